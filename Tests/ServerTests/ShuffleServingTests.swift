import Foundation
import Testing
import TestSupport
import TokenfeedClient
import TokenfeedCurriculum
import TokenfeedEngine
@testable import TokenfeedServer

/// A daemon serving a shuffled curriculum (issue 10.5): the bytes `BatchAssembler` packs, a cursor
/// resuming exactly, another fingerprint than the unshuffled stream, and `plan` saying so.
@Suite struct ShuffleServingTests {
    @Test func aDaemonServesTheShuffledStreamAndResumesExactly() throws {
        let fixture = try ServerFixture()
        let path = fixture.dir.sub("shuffled.yaml")
        try String(contentsOfFile: fixture.curriculumPath, encoding: .utf8)
            .replacingOccurrences(of: "seed: 11\n", with: "seed: 11\nshuffle: {span: 16}\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let curriculum = try CurriculumLoader.load(path: path, dataRoot: fixture.dataRoot)
        let stream = try GlobalStream(curriculum: curriculum)
        #expect(StreamDescription(stream: stream).fingerprint != StreamDescription(stream: fixture.stream).fingerprint)
        #expect(StreamDescription(stream: stream).text.contains("\nshuffle=rows,16\n"))

        let (before, after) = try fixture.servedRows(curriculum: path, batches: 7, thenResumedFor: 13)
        let slice = RankSlice(rank: 0, worldSize: 1, batchSize: 2)
        let expected = try (0 ..< 20).flatMap { try fixture.reference(step: UInt64($0), slice: slice, stream: stream).tokens }
        let unshuffled = try (0 ..< 20).flatMap { try fixture.reference(step: UInt64($0), slice: slice).tokens }
        #expect((before + after).map(\.tokens) == expected)
        #expect(expected != unshuffled)

        let plan = try run(productsFolder + "/tokenfeed", ["plan", path])
        #expect(String(decoding: plan.stdout, as: UTF8.self).contains("rows shuffled within blocks of 16 (seeded)"))
        let json = try run(productsFolder + "/tokenfeed", ["plan", path, "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any])
        #expect((object["shuffle"] as? [String: Any])?["span"] as? Int == 16)
        let plain = try run(productsFolder + "/tokenfeed", ["plan", Fixtures.path("curricula/smollm3/stage3_9T_11T.yaml")])
        #expect(String(decoding: plain.stdout, as: UTF8.self).contains("rows in stream order (no shuffle)"))
    }
}
