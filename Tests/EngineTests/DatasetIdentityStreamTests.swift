import Foundation
import Testing
import TestSupport
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedMixing
import TokenfeedShards

/// One dataset identity read from another folder in a later stage (issue 10.1): its stream continues
/// where the earlier stage stopped — the same bytes as a curriculum naming one folder throughout —
/// and no row of it is served twice within an epoch.
@Suite struct DatasetIdentityStreamTests {
    /// The engine fixture's curriculum with stage 'middle' and 'last' reading `code` from a copy,
    /// `code-copy`, under one identity (`shared`), or as a dataset of its own (not shared).
    static func curricula(_ fixture: EngineFixture) throws -> (direct: Curriculum, shared: Curriculum, separate: Curriculum) {
        try FileManager.default.copyItem(atPath: fixture.dataRoot + "/code", toPath: fixture.dataRoot + "/code-copy")
        func yaml(_ datasets: String, _ later: String) -> String {
            """
            sequence_length: \(fixture.sequenceLength)
            seed: 11
            datasets: {\(datasets)}
            stages:
              - {name: warmup, start: 0, end: 640, mixture: {web: 0.7, code: 0.3}}
              - {name: middle, start: 640, end: 2000, mixture: {web: 0.5, \(later): 0.25, tiny: 0.25}}
              - {name: last, start: 2000, end: 200K, mixture: {web: 3, \(later): 1, tiny: 1}}

            """
        }
        func load(_ name: String, _ text: String) throws -> Curriculum {
            let path = fixture.dir.sub(name)
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return try CurriculumLoader.load(path: path, dataRoot: fixture.dataRoot)
        }
        return (try load("direct.yaml", yaml("", "code")),
                try load("shared.yaml", yaml("code-later: {folder: code-copy, identity: code}", "code-later")),
                try load("separate.yaml", yaml("code-later: code-copy", "code-later")))
    }

    static func rows(_ stream: GlobalStream, steps: Range<UInt64>, slice: RankSlice) throws -> [[UInt32]] {
        var assembler = BatchAssembler(stream: stream, slice: slice)
        let frames = DirectFrameProvider(stream: stream)
        let block = UnsafeMutableRawBufferPointer.allocate(byteCount: assembler.tokenBlockBytes, alignment: 64)
        defer { block.deallocate() }
        var out: [[UInt32]] = []
        for step in steps {
            try assembler.assemble(step: step, into: block, frames: frames)
            out.append((0 ..< assembler.tokenBlockBytes / 4).map { block.load(fromByteOffset: $0 * 4, as: UInt32.self) })
        }
        return out
    }

    @Test func aSharedIdentityContinuesAcrossStagesWithTheBytesOfOneFolder() throws {
        let fixture = try EngineFixture()
        let (direct, shared, separate) = try Self.curricula(fixture)
        #expect(shared.datasets.map(\.name) == ["web", "code", "tiny"])
        #expect(shared.datasets[1].folders.map(\.stages) == [[0], [1, 2]])
        #expect(shared.fingerprint == direct.fingerprint)
        let directStream = try GlobalStream(curriculum: direct), sharedStream = try GlobalStream(curriculum: shared)
        #expect(StreamDescriptionText.of(sharedStream) == StreamDescriptionText.of(directStream))
        let slice = RankSlice(rank: 0, worldSize: 1, batchSize: 4)
        // Stage 'middle' starts at sequence 10 (step 2), 'last' at sequence 32 (step 8).
        #expect(try Self.rows(sharedStream, steps: 0 ..< 30, slice: slice) == Self.rows(directStream, steps: 0 ..< 30, slice: slice))

        // Resuming at any step around both boundaries gives the continuation of an uninterrupted run.
        let uninterrupted = try Self.rows(sharedStream, steps: 0 ..< 14, slice: slice)
        for start in UInt64(0) ..< 12 {
            #expect(try Self.rows(sharedStream, steps: start ..< start + 2, slice: slice) == Array(uninterrupted[Int(start) ..< Int(start) + 2]))
        }

        // Within an epoch, no row of the dataset is served twice across stages: its k-th draw starts at
        // position k·L of its stream, whatever stage draws it.
        let plan = sharedStream.plan
        var planner = sharedStream.planner()
        var pieces: [SequencePiece] = []
        var starts = Set<String>()
        var drawn: UInt64 = 0
        let epochSequences = EpochOrder.sequencesPerEpoch(tokens: sharedStream.datasets[1].tokenCount, sequenceLength: fixture.sequenceLength)
        var i: UInt64 = 0
        while drawn < epochSequences && i < plan.totalSequences {
            let source = plan.source(ofSequence: i)
            if source.dataset == 1 {
                #expect(source.ordinal == drawn)
                pieces.removeAll(keepingCapacity: true)
                let record = try planner.plan(sequence: i, step: 0, appendingTo: &pieces)
                #expect(record.epoch == 0)
                let first = pieces[Int(record.firstPiece)]
                #expect(starts.insert("\(first.shard):\(first.offset)").inserted, "sequence \(i) repeats a row")
                drawn += 1
            }
            i += 1
        }
        #expect(i > plan.firstSequence(ofStage: 2) && drawn > 20, "the walk spans all three stages (\(drawn) rows of code)")

        // As a dataset of its own, the copy restarts at its first token in stage 'middle': the same
        // rows served twice — what the shared identity prevents.
        let separateStream = try GlobalStream(curriculum: separate)
        let later = try #require(separate.datasets.firstIndex { $0.name == "code-later" })
        let firstLater = try #require(separateStream.plan.sequence(ofOrdinal: 0, dataset: later))
        #expect(separateStream.plan.source(ofSequence: firstLater).stage == 1)
        var separatePlanner = separateStream.planner()
        pieces.removeAll()
        _ = try separatePlanner.plan(sequence: firstLater, step: 0, appendingTo: &pieces)
        #expect(pieces.first?.offset == 0 && pieces.first?.shard == 0)
    }
}

/// The stream description's text, through the engine (the description itself lives in the server).
enum StreamDescriptionText {
    static func of(_ stream: GlobalStream) -> [String] {
        stream.curriculum.datasets.indices.map { d in
            stream.curriculum.datasets[d].name + ":" + stream.datasets[d].shards.indices.map { stream.shardName(dataset: d, shard: $0) }.joined(separator: ",")
        }
    }
}
