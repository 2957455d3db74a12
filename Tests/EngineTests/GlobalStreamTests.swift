import Foundation
import Testing
import TestSupport
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedMixing
import TokenfeedShards

@Suite struct GlobalStreamTests {
    /// Every token of every sequence equals the right window of its dataset's stream, recomputed
    /// independently (stock zstd, sequential counting of the plan's choices), and the provenance
    /// pieces read from the shards give exactly the tokens, one document each.
    @Test func everySequenceIsTheRightWindowOfItsDataset() throws {
        let fixture = try EngineFixture()
        let curriculum = try fixture.curriculum()
        let stream = try GlobalStream(curriculum: curriculum)
        let references = try curriculum.datasets.map {
            try ReferenceDataset(folder: $0.folder!, name: $0.name, seed: curriculum.seed)
        }
        let L = fixture.sequenceLength
        var assembler = BatchAssembler(stream: stream, slice: RankSlice(rank: 0, worldSize: 1, batchSize: 8))
        let frames = DirectFrameProvider(stream: stream)
        let block = UnsafeMutableRawBufferPointer.allocate(byteCount: assembler.tokenBlockBytes, alignment: 64)
        defer { block.deallocate() }
        var drawn = [Int](repeating: 0, count: curriculum.datasets.count)
        var tinyEpochs = Set<UInt32>()
        for step in 0 ..< UInt64(60) {
            try assembler.assemble(step: step, into: block, frames: frames)
            for (j, record) in assembler.records.enumerated() {
                let i = step * 8 + UInt64(j)
                #expect(record.sequence == i)
                let d = Int(record.dataset)
                #expect(d == stream.plan.source(ofSequence: i).dataset)
                let k = drawn[d]
                drawn[d] += 1
                let expected = references[d].window(k * L, L + 1)
                let row = (0 ..< L + 1).map { block.load(fromByteOffset: (j * (L + 1) + $0) * 4, as: UInt32.self) }
                #expect(row == expected, "sequence \(i) (dataset \(references[d].name), k \(k))")
                // Provenance: pieces in order give the tokens; each piece lies in one document.
                var fromPieces: [UInt32] = []
                for p in assembler.pieces[Int(record.firstPiece) ..< Int(record.firstPiece + record.pieceCount)] {
                    let shard = references[d].shardTokens[Int(p.shard)]
                    fromPieces += shard[Int(p.offset) ..< Int(p.offset) + Int(p.length)]
                    let ends = try stream.datasets[d].shards[Int(p.shard)].allDocumentEnds()
                    let docStart = p.document == 0 ? 0 : ends[Int(p.document) - 1]
                    #expect(docStart <= p.offset && p.offset + UInt64(p.length) <= ends[Int(p.document)])
                }
                #expect(fromPieces == expected)
                if references[d].name == "tiny" { tinyEpochs.insert(record.epoch) }
            }
        }
        #expect(tinyEpochs.count > 3, "the tiny dataset wraps into later epochs: \(tinyEpochs.sorted())")
    }

    /// The union of all ranks' slices is the world-size-1 stream, nothing repeated or missing,
    /// for any world size with the same global batch.
    @Test func rankSlicesAreDisjointAndCoverTheStream() throws {
        let fixture = try EngineFixture()
        let stream = try GlobalStream(curriculum: try fixture.curriculum())
        let frames = DirectFrameProvider(stream: stream)
        func rows(_ slice: RankSlice, step: UInt64) throws -> [(UInt64, [UInt32])] {
            var assembler = BatchAssembler(stream: stream, slice: slice)
            let block = UnsafeMutableRawBufferPointer.allocate(byteCount: assembler.tokenBlockBytes, alignment: 64)
            defer { block.deallocate() }
            try assembler.assemble(step: step, into: block, frames: frames)
            return assembler.records.enumerated().map { j, r in
                (r.sequence, (0 ..< stream.rowTokens).map { block.load(fromByteOffset: (j * stream.rowTokens + $0) * 4, as: UInt32.self) })
            }
        }
        for step in [UInt64(0), 1, 7, 30] {
            let whole = try rows(RankSlice(rank: 0, worldSize: 1, batchSize: 8), step: step)
            #expect(whole.map(\.0) == Array(step * 8 ..< step * 8 + 8))
            for world in [2, 4, 8] {
                var union: [(UInt64, [UInt32])] = []
                for rank in 0 ..< world { union += try rows(RankSlice(rank: rank, worldSize: world, batchSize: 8 / world), step: step) }
                #expect(union.map(\.0) == whole.map(\.0))
                #expect(union.map(\.1) == whole.map(\.1))
            }
        }
    }

    /// Each stage begins at the first sequence whose first token is at or past its start token.
    @Test func stagesSwitchAtTheExactSequence() throws {
        let fixture = try EngineFixture()
        let curriculum = try fixture.curriculum()
        let stream = try GlobalStream(curriculum: curriculum)
        var planner = stream.planner()
        var pieces: [SequencePiece] = []
        let L = UInt64(fixture.sequenceLength)
        for (s, stage) in curriculum.stages.enumerated() {
            let first = (stage.startToken + L - 1) / L
            if first > 0 {
                #expect(try planner.plan(sequence: first - 1, step: 0, appendingTo: &pieces).stage == UInt32(s - 1))
            }
            #expect(try planner.plan(sequence: first, step: 0, appendingTo: &pieces).stage == UInt32(s))
        }
    }

    /// Same inputs, same bytes: two independent streams give identical batches.
    @Test func theStreamIsAPureFunctionOfItsInputs() throws {
        let fixture = try EngineFixture()
        let a = try GlobalStream(curriculum: try fixture.curriculum())
        let b = try GlobalStream(curriculum: try fixture.curriculum())
        var x = BatchAssembler(stream: a, slice: RankSlice(rank: 1, worldSize: 2, batchSize: 3))
        var y = BatchAssembler(stream: b, slice: RankSlice(rank: 1, worldSize: 2, batchSize: 3))
        let bx = UnsafeMutableRawBufferPointer.allocate(byteCount: x.tokenBlockBytes, alignment: 64)
        let by = UnsafeMutableRawBufferPointer.allocate(byteCount: y.tokenBlockBytes, alignment: 64)
        defer { bx.deallocate(); by.deallocate() }
        let fa = DirectFrameProvider(stream: a), fb = DirectFrameProvider(stream: b, capacity: 1)
        for step in [UInt64(50), 3, 0, 17] {      // any order: random access
            try x.assemble(step: step, into: bx, frames: fa)
            try y.assemble(step: step, into: by, frames: fb)
            #expect(Array(bx) == Array(by))
            #expect(x.records == y.records && x.pieces == y.pieces)
        }
    }

    /// Provenance names shards by their path relative to the data root, nested folders included.
    @Test func shardNamesAreRelativeToTheDataRoot() throws {
        let fixture = try EngineFixture()
        let stream = try GlobalStream(curriculum: try fixture.curriculum())
        #expect(stream.shardName(dataset: 0, shard: 1) == "web/part-1.zst")
        let nested = fixture.dir.sub("data/team/deep", create: true)
        try SyntheticCorpus.writeShard(SyntheticCorpus.documents(seed: 1, count: 3, vocabulary: 1000, meanLength: 90),
                                       path: nested + "/a.zst", vocabulary: 1000)
        let yaml = """
            sequence_length: 16
            datasets:
              deep: team/deep
            stages:
              - name: only
                start: 0
                end: 160
                mixture:
                  deep: 1
            """
        try yaml.write(toFile: fixture.dir.sub("nested.yaml"), atomically: true, encoding: .utf8)
        let nestedStream = try GlobalStream(curriculum: try CurriculumLoader.load(path: fixture.dir.sub("nested.yaml"),
                                                                                  dataRoot: fixture.dataRoot + "/"))
        #expect(nestedStream.shardName(dataset: 0, shard: 0) == "team/deep/a.zst")
    }
}
