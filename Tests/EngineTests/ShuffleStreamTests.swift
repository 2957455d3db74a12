import Foundation
import Testing
import TestSupport
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedMixing
import TokenfeedShards

/// A shuffled curriculum (issue 10.5): the same rows in another order, random access kept.
@Suite struct ShuffleStreamTests {
    static func curricula(_ fixture: EngineFixture, span: Int) throws -> (plain: Curriculum, shuffled: Curriculum) {
        let plain = try fixture.curriculum()
        let text = try String(contentsOfFile: fixture.dir.sub("curriculum.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "seed: 11\n", with: "seed: 11\nshuffle: {span: \(span)}\n")
        let path = fixture.dir.sub("shuffled.yaml")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return (plain, try CurriculumLoader.load(path: path, dataRoot: fixture.dataRoot))
    }

    @Test func theSameRowsInAnotherOrderWithRandomAccess() throws {
        let fixture = try EngineFixture()
        let span = 8
        let (plain, shuffled) = try Self.curricula(fixture, span: span)
        #expect(shuffled.shuffle == .rows(span: span))
        let plainStream = try GlobalStream(curriculum: plain), stream = try GlobalStream(curriculum: shuffled)
        // Per dataset, the first whole blocks of draws read the rows the unshuffled stream reads, in another order.
        var planner = stream.planner(), plainPlanner = plainStream.planner()
        var rows = [[String]](repeating: [], count: shuffled.datasets.count), plainRows = rows
        var pieces: [SequencePiece] = []
        for i in UInt64(0) ..< 600 {
            pieces.removeAll(keepingCapacity: true)
            let record = try planner.plan(sequence: i, step: 0, appendingTo: &pieces)
            rows[Int(record.dataset)].append("\(pieces[0].shard):\(pieces[0].offset)")
            pieces.removeAll(keepingCapacity: true)
            _ = try plainPlanner.plan(sequence: i, step: 0, appendingTo: &pieces)
            plainRows[Int(record.dataset)].append("\(pieces[0].shard):\(pieces[0].offset)")
        }
        for d in rows.indices {
            let whole = rows[d].count / span * span
            #expect(whole >= 2 * span, "dataset \(d) draws \(rows[d].count) rows")
            #expect(Set(rows[d].prefix(whole)) == Set(plainRows[d].prefix(whole)), "dataset \(d)")
            #expect(rows[d].prefix(whole) != plainRows[d].prefix(whole), "dataset \(d) is reordered")
        }
        // Tokens: the k-th draw of a dataset is its window at row rowIndex(k), recomputed from the shards by zstd.
        let references = try shuffled.datasets.map { try ReferenceDataset(folder: $0.folder!, name: $0.identity, seed: shuffled.seed) }
        let shuffle = RowShuffle(span: span, seed: shuffled.seed)
        let L = fixture.sequenceLength
        var assembler = BatchAssembler(stream: stream, slice: RankSlice(rank: 0, worldSize: 1, batchSize: 8))
        let block = UnsafeMutableRawBufferPointer.allocate(byteCount: assembler.tokenBlockBytes, alignment: 64)
        defer { block.deallocate() }
        var drawn = [UInt64](repeating: 0, count: shuffled.datasets.count)
        for step in UInt64(0) ..< 20 {
            try assembler.assemble(step: step, into: block, frames: DirectFrameProvider(stream: stream))
            for (j, record) in assembler.records.enumerated() {
                let d = Int(record.dataset)
                let row = shuffle.rowIndex(drawn[d], datasetKey: RowShuffle.datasetKey(identity: shuffled.datasets[d].identity))
                drawn[d] += 1
                let tokens = (0 ..< L + 1).map { block.load(fromByteOffset: (j * (L + 1) + $0) * 4, as: UInt32.self) }
                #expect(tokens == references[d].window(Int(row) * L, L + 1), "sequence \(record.sequence)")
            }
        }
        // Any step computed directly (a resume) equals the preloaded feed from any start.
        try EngineFixture.expectFeedMatchesDirectAssembly(stream, slice: RankSlice(rank: 1, worldSize: 2, batchSize: 3),
                                                          starts: [(0, 1 << 20), (37, 1 << 20)])
    }
}
