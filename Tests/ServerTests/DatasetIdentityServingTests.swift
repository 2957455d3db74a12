import Foundation
import Testing
import TestSupport
import TokenfeedClient
import TokenfeedCurriculum
import TokenfeedEngine
@testable import TokenfeedServer

/// A daemon serving a curriculum whose later stages read a dataset from another folder under the
/// same identity (issue 10.1): the bytes of the run that names one folder throughout, a stream
/// description listing the dataset once, and a cursor taken before the boundary resuming exactly.
@Suite struct DatasetIdentityServingTests {
    @Test func aDaemonContinuesASharedIdentityAcrossStagesAndResumesExactly() throws {
        let fixture = try ServerFixture()
        try FileManager.default.copyItem(atPath: fixture.dataRoot + "/code", toPath: fixture.dataRoot + "/code-copy")
        let shared = fixture.dir.sub("shared.yaml")
        try """
        sequence_length: \(fixture.sequenceLength)
        seed: 11
        datasets: {code-later: {folder: code-copy, identity: code}}
        stages:
          - {name: warmup, start: 0, end: 640, mixture: {web: 0.7, code: 0.3}}
          - {name: middle, start: 640, end: 2000, mixture: {web: 0.5, code-later: 0.25, tiny: 0.25}}
          - {name: last, start: 2000, end: 200K, mixture: {web: 3, code-later: 1, tiny: 1}}

        """.write(toFile: shared, atomically: true, encoding: .utf8)
        let curriculum = try CurriculumLoader.load(path: shared, dataRoot: fixture.dataRoot)
        let description = StreamDescription(stream: try GlobalStream(curriculum: curriculum))
        #expect(description.text == StreamDescription(stream: fixture.stream).text)
        #expect(description.text.components(separatedBy: "dataset=code\n").count == 2)

        // Stage 'middle' starts at step 5, 'last' at step 16.
        let (before, after) = try fixture.servedRows(curriculum: shared, batches: 4, thenResumedFor: 16)
        let slice = RankSlice(rank: 0, worldSize: 1, batchSize: 2)
        let expected = try (0 ..< 20).flatMap { try fixture.reference(step: UInt64($0), slice: slice).tokens }
        #expect((before + after).map(\.tokens) == expected, "the shared identity serves the one-folder run's bytes")
        #expect(after.last?.stage == 2)
        // The code rows of stage 'middle' continue after warmup's: none of their first pieces repeats.
        let codeStarts = (before + after).filter { $0.dataset == 1 }.compactMap { $0.pieces.first }.map { "\($0.shardIndex):\($0.tokenOffset)" }
        #expect(codeStarts.count > 5 && Set(codeStarts).count == codeStarts.count)
    }
}

extension ServerFixture {
    /// Serves `curriculum` with a daemon on this fixture; rank 0 of 1 (batch 2) reads `batches`
    /// batches, disconnects, and resumes from its cursor for `more` batches.
    func servedRows(curriculum: String, batches: Int, thenResumedFor more: Int) throws -> (before: [ReceivedRow], after: [ReceivedRow]) {
        var options = options()
        options.curriculumPath = curriculum
        let server = try startServer(options)
        defer { server.shutdown() }
        let client = try TokenfeedClient.connect(socketPath: socketPath, rank: 0, worldSize: 1, batchSize: 2)
        let before = try client.rows(batches: batches)
        let cursor = client.cursor
        client.close()
        let resumed = try TokenfeedClient.connect(socketPath: socketPath, rank: 0, worldSize: 1, batchSize: 2, cursor: cursor)
        defer { resumed.close() }
        return (before, try resumed.rows(batches: more))
    }
}
