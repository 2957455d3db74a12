import Foundation
import Synchronization
import Testing
import TestSupport
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedMixing
import TokenfeedShards

/// The `bestfit` packing mode, checked against independent models: shards read with the stock
/// `zstd` tool, document boundaries from the shard metadata, groups and epoch orders recomputed here.
@Suite struct BestFitTests {
    static let pad: UInt32 = 128_004

    /// Writes a bestfit curriculum over the engine fixture's datasets (same three stages, scaled to
    /// the sequence length) and loads it.
    static func curriculum(_ fixture: EngineFixture, sequenceLength: Int, lookahead: Int, extra: Int = 0,
                           pad: UInt32 = BestFitTests.pad, file: String = "bestfit.yaml") throws -> Curriculum {
        let L = sequenceLength
        var yaml = """
        sequence_length: \(L)
        seed: 11
        packing: {mode: bestfit, pad_token: \(pad), lookahead: \(lookahead)}
        stages:
          - name: warmup
            start: 0
            end: \(10 * L)
            mixture:
              web: 0.7
              code: 0.3
          - name: middle
            start: \(10 * L)
            end: \(30 * L)
            mixture:
              web: 0.5
              code: 0.25
              tiny: 0.25
          - name: last
            start: \(30 * L)
            end: \(200_000 * L)
            mixture:
              web: 3
              code: 1
              tiny: 1

        """
        for e in 0 ..< extra { yaml += "      extra\(e): 0.5\n" }
        let path = fixture.dir.sub(file)
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return try CurriculumLoader.load(path: path, dataRoot: fixture.dataRoot)
    }

    /// Row `j` of a uint32 token block.
    static func row(_ block: UnsafeMutableRawBufferPointer, _ j: Int, rowTokens: Int) -> [UInt32] {
        (0 ..< rowTokens).map { block.load(fromByteOffset: (j * rowTokens + $0) * 4, as: UInt32.self) }
    }

    /// Every served row is its pieces' tokens, read from the shards with stock zstd, then pad ids:
    /// pieces lie inside one document each and fill the row up to its padding.
    @Test(arguments: [(64, 4), (256, 16), (1024, 1)])
    func everyRowIsItsPiecesThenPadding(sequenceLength: Int, lookahead: Int) throws {
        let fixture = try EngineFixture()
        let curriculum = try Self.curriculum(fixture, sequenceLength: sequenceLength, lookahead: lookahead)
        let stream = try GlobalStream(curriculum: curriculum)
        let references = try curriculum.datasets.map { try ReferenceDataset(folder: $0.folder!, name: $0.name, seed: curriculum.seed) }
        let R = stream.rowTokens
        var assembler = BatchAssembler(stream: stream, slice: RankSlice(rank: 0, worldSize: 1, batchSize: 8))
        let frames = DirectFrameProvider(stream: stream)
        let block = UnsafeMutableRawBufferPointer.allocate(byteCount: assembler.tokenBlockBytes, alignment: 64)
        defer { block.deallocate() }
        var paddedRows = 0, tinyEpochs = Set<UInt32>()
        for step in 0 ..< UInt64(50) {
            try assembler.assemble(step: step, into: block, frames: frames)
            for (j, record) in assembler.records.enumerated() {
                let d = Int(record.dataset)
                #expect(d == stream.plan.source(ofSequence: record.sequence).dataset)
                var expected: [UInt32] = []
                for p in assembler.pieces[Int(record.firstPiece) ..< Int(record.firstPiece + record.pieceCount)] {
                    #expect(p.length > 0)
                    expected += references[d].shardTokens[Int(p.shard)][Int(p.offset) ..< Int(p.offset) + Int(p.length)]
                    let reader = stream.datasets[d].shards[Int(p.shard)]
                    #expect(try reader.documentStart(Int(p.document)) <= p.offset
                            && p.offset + UInt64(p.length) <= reader.documentEnd(Int(p.document)))
                }
                #expect(expected.count + Int(record.paddedTokens) == R)
                expected += Array(repeating: Self.pad, count: Int(record.paddedTokens))
                #expect(Self.row(block, j, rowTokens: R) == expected, "sequence \(record.sequence)")
                if record.paddedTokens > 0 { paddedRows += 1 }
                if references[d].name == "tiny" { tinyEpochs.insert(record.epoch) }
            }
        }
        #expect(paddedRows > 0)
        #expect(tinyEpochs.count > 2, "the tiny dataset wraps: \(tinyEpochs.sorted())")
    }

    /// Walking a dataset's rows in order: rows come group after group (groups of `lookahead`
    /// documents within a shard, shards in each epoch's order); every document of a group appears
    /// exactly once and whole over the group's consecutive rows; a document is split only when it is
    /// longer than a row, into full rows and one remainder; pieces and rows are in stream order; any
    /// two rows of a group that are not full chunks hold more than a row together (best fit packs).
    @Test(arguments: [(64, 4), (256, 8), (1024, 64)])
    func documentsAppearOnceAndWholeInTheirGroup(sequenceLength: Int, lookahead: Int) throws {
        let fixture = try EngineFixture()
        let curriculum = try Self.curriculum(fixture, sequenceLength: sequenceLength, lookahead: lookahead)
        let stream = try GlobalStream(curriculum: curriculum)
        let R = UInt64(stream.rowTokens)
        for (d, spec) in curriculum.datasets.enumerated() {
            let folder = stream.datasets[d]
            // The expected groups, in order: (epoch, shard, documents).
            var groups: [(epoch: UInt64, shard: Int, documents: Range<Int>)] = []
            for epoch in 0 ..< UInt64(12) {
                for s in EpochOrder.shardOrder(datasetName: spec.name, epoch: epoch, shardCount: folder.shards.count, seed: curriculum.seed) {
                    let n = folder.shards[s].metadata.documentCount
                    for first in stride(from: 0, to: n, by: lookahead) {
                        groups.append((epoch, s, first ..< min(n, first + lookahead)))
                    }
                }
            }
            let wanted = min(groups.count - 1, 8 + folder.shards.count * 3)   // complete groups to check
            var planner = stream.planner()
            var pieces: [SequencePiece] = []
            var g = 0
            var covered: [Int: [(offset: UInt64, length: UInt64)]] = [:]
            var groupRows: [(fill: UInt64, chunk: Bool, first: (Int, UInt64))] = []
            func closeGroup() throws {
                let reader = folder.shards[groups[g].shard]
                for doc in groups[g].documents {
                    let start = try reader.documentStart(doc), length = try reader.documentEnd(doc) - start
                    let runs = (covered[doc] ?? []).sorted { $0.offset < $1.offset }
                    if length == 0 { #expect(runs.isEmpty); continue }
                    // Tiles the document exactly: full rows, then the remainder.
                    var at = start
                    for run in runs { #expect(run.offset == at); at += run.length }
                    #expect(at == start + length, "\(spec.name) shard \(groups[g].shard) document \(doc) not covered once")
                    let expectedRuns = Int(length / R) + (length % R > 0 ? 1 : 0)
                    #expect(runs.count == expectedRuns, "\(spec.name) document \(doc) of \(length) tokens split in \(runs.count)")
                    #expect(runs.dropLast(length % R > 0 ? 1 : 0).allSatisfy { $0.length == R })
                }
                #expect(covered.keys.allSatisfy { groups[g].documents.contains($0) })
                // Rows in stream order of their first piece; item rows pairwise over-full.
                #expect(zip(groupRows, groupRows.dropFirst()).allSatisfy { $0.first < $1.first })
                let fills = groupRows.filter { !$0.chunk }.map(\.fill).sorted()
                if fills.count >= 2 { #expect(fills[0] + fills[1] > R, "\(spec.name): two rows could be one") }
                covered = [:]
                groupRows = []
                g += 1
            }
            var k: UInt64 = 0
            while g < wanted {
                guard let i = stream.plan.sequence(ofOrdinal: k, dataset: d) else { Issue.record("\(spec.name) ran out at row \(k)"); break }
                pieces.removeAll()
                let record = try planner.plan(sequence: i, step: 0, appendingTo: &pieces)
                #expect(record.dataset == UInt32(d))
                let first = try #require(pieces.first)
                if !(Int(first.shard) == groups[g].shard && groups[g].documents.contains(Int(first.document))
                     && UInt64(record.epoch) == groups[g].epoch && !(covered[Int(first.document)]?.contains { $0.offset == first.offset } ?? false)) {
                    try closeGroup()
                    if g == wanted { break }
                }
                #expect(Int(first.shard) == groups[g].shard && UInt64(record.epoch) == groups[g].epoch,
                        "\(spec.name) row \(k): shard \(first.shard) epoch \(record.epoch), expected group \(groups[g])")
                var fill: UInt64 = 0
                for p in pieces {
                    #expect(Int(p.shard) == groups[g].shard && groups[g].documents.contains(Int(p.document)))
                    covered[Int(p.document), default: []].append((p.offset, UInt64(p.length)))
                    fill += UInt64(p.length)
                }
                #expect(zip(pieces, pieces.dropFirst()).allSatisfy { $0.document < $1.document }, "one piece per document, in order")
                #expect(fill + UInt64(record.paddedTokens) == R)
                let reader = folder.shards[Int(first.shard)]
                let isChunk = try pieces.count == 1 && first.length == UInt32(R)
                    && first.offset + R <= reader.documentEnd(Int(first.document))
                    && (first.offset - reader.documentStart(Int(first.document))) % R == 0
                groupRows.append((fill, isChunk, (Int(first.document), first.offset)))
                k += 1
            }
            #expect(g == wanted, "\(spec.name): checked \(g) of \(wanted) groups")
        }
    }

    /// Row k computed cold (a fresh stream and planner) or in any order equals row k computed by
    /// walking the stream from the start.
    @Test func rowsHaveRandomAccess() throws {
        let fixture = try EngineFixture()
        let curriculum = try Self.curriculum(fixture, sequenceLength: 128, lookahead: 8)
        let stream = try GlobalStream(curriculum: curriculum)
        var walker = stream.planner()
        var walked: [(SequenceRecord, [SequencePiece])] = []
        var pieces: [SequencePiece] = []
        for i in 0 ..< UInt64(4000) {
            pieces.removeAll()
            let record = try walker.plan(sequence: i, step: 0, appendingTo: &pieces)
            walked.append((record, pieces))
        }
        var rng = SplitMix64(seed: 7)
        var shuffled = stream.planner()
        for i in Array(0 ..< UInt64(4000)).shuffled(using: &rng).prefix(600) {
            pieces.removeAll()
            #expect(try shuffled.plan(sequence: i, step: 0, appendingTo: &pieces) == walked[Int(i)].0)
            #expect(pieces == walked[Int(i)].1)
        }
        // Several planners of one cold stream counting shards at once (shared counts) agree too.
        let shared = try GlobalStream(curriculum: curriculum)
        let mismatches = Mutex(0)
        let expected = walked
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            var planner = shared.planner()
            var own: [SequencePiece] = []
            for i in stride(from: UInt64(3999 - t * 7), to: 0, by: -61) {
                own.removeAll()
                guard let record = try? planner.plan(sequence: i, step: 0, appendingTo: &own) else {
                    mismatches.withLock { $0 += 1 }
                    continue
                }
                if record != expected[Int(i)].0 || own != expected[Int(i)].1 { mismatches.withLock { $0 += 1 } }
            }
        }
        #expect(mismatches.withLock { $0 } == 0)
        for i in [UInt64(3999), 2500, 1, 0, 1234, 3000] {
            let cold = try GlobalStream(curriculum: curriculum)
            var planner = cold.planner()
            pieces.removeAll()
            #expect(try planner.plan(sequence: i, step: 0, appendingTo: &pieces) == walked[Int(i)].0, "cold \(i)")
            #expect(pieces == walked[Int(i)].1)
        }
    }

    /// The union of all ranks' slices is the world-size-1 stream, padding included.
    @Test func rankSlicesCoverTheStream() throws {
        let fixture = try EngineFixture()
        let stream = try GlobalStream(curriculum: try Self.curriculum(fixture, sequenceLength: 256, lookahead: 16))
        let frames = DirectFrameProvider(stream: stream)
        func rows(_ slice: RankSlice, step: UInt64) throws -> [(SequenceRecord, [UInt32])] {
            var assembler = BatchAssembler(stream: stream, slice: slice)
            let block = UnsafeMutableRawBufferPointer.allocate(byteCount: assembler.tokenBlockBytes, alignment: 64)
            defer { block.deallocate() }
            try assembler.assemble(step: step, into: block, frames: frames)
            return assembler.records.enumerated().map { j, r in (r, Self.row(block, j, rowTokens: stream.rowTokens)) }
        }
        var padded = 0
        for step in [UInt64(0), 1, 9, 40, 300] {
            let whole = try rows(RankSlice(rank: 0, worldSize: 1, batchSize: 8), step: step)
            #expect(whole.map(\.0.sequence) == Array(step * 8 ..< step * 8 + 8))
            padded += whole.filter { $0.0.paddedTokens > 0 }.count
            for world in [2, 4, 8] {
                var union: [(SequenceRecord, [UInt32])] = []
                for rank in 0 ..< world { union += try rows(RankSlice(rank: rank, worldSize: world, batchSize: 8 / world), step: step) }
                #expect(union.map(\.0.sequence) == whole.map(\.0.sequence))
                #expect(union.map(\.0.paddedTokens) == whole.map(\.0.paddedTokens))
                #expect(union.map(\.1) == whole.map(\.1))
            }
        }
        #expect(padded > 0)
    }

    /// Batches through the preloader and the ring equal the directly assembled ones in bestfit mode,
    /// from several start steps, with tiny budgets and many datasets.
    @Test func feedMatchesDirectAssembly() throws {
        let fixture = try EngineFixture(extraDatasets: 7)
        let stream = try GlobalStream(curriculum: try Self.curriculum(fixture, sequenceLength: 256, lookahead: 16, extra: 7))
        try EngineFixture.expectFeedMatchesDirectAssembly(stream, slice: RankSlice(rank: 1, worldSize: 2, batchSize: 4),
                                                          starts: [(0, 1), (21, 64 << 10), (200, 64 << 20)])
    }

    /// The padding report is exact — it equals the padding of the rows the stream serves over one
    /// epoch — gives one row per chunk of a document with a look-ahead of one, and the padding
    /// fraction falls (weakly) as the look-ahead grows.
    @Test func paddingReportIsExactAndFallsWithLookahead() throws {
        let fixture = try EngineFixture()
        let web = try DatasetFolder.open(path: fixture.dataRoot + "/web")
        for L in [256, 1024, 2048] {
            let R = UInt64(L + 1)
            var lengths: [UInt64] = []
            for shard in web.shards {
                let ends = try shard.allDocumentEnds()
                lengths += zip([0] + ends.dropLast(), ends).map { $1 - $0 }
            }
            let single = try PaddingReport(folder: web, sequenceLength: L, lookahead: 1)
            #expect(single.rows == lengths.reduce(0) { $0 + ($1 + R - 1) / R })
            var previous = single.fraction
            for lookahead in [4, 16, 64, 1024] {
                let report = try PaddingReport(folder: web, sequenceLength: L, lookahead: lookahead)
                #expect(report.documentTokens == web.tokenCount)
                #expect(report.fraction <= previous, "L \(L): lookahead \(lookahead) pads \(report.fraction), less look-ahead \(previous)")
                previous = report.fraction
            }
            #expect(previous < single.fraction)
        }
        // Exact: the served rows of web's epoch 0 pad exactly as reported.
        let curriculum = try Self.curriculum(fixture, sequenceLength: 256, lookahead: 16)
        let stream = try GlobalStream(curriculum: curriculum)
        let report = try PaddingReport(folder: stream.datasets[0], sequenceLength: 256, lookahead: 16)
        var planner = stream.planner()
        var pieces: [SequencePiece] = []
        var rows: UInt64 = 0, padded: UInt64 = 0
        while true {
            let i = try #require(stream.plan.sequence(ofOrdinal: rows, dataset: 0))
            pieces.removeAll()
            let record = try planner.plan(sequence: i, step: 0, appendingTo: &pieces)
            if record.epoch > 0 { break }
            rows += 1
            padded += UInt64(record.paddedTokens)
        }
        #expect(rows == report.rows && padded == report.paddedTokens)
    }

    /// A pad id outside the datasets' vocabulary is refused, naming the curriculum file and the field.
    @Test func aPadTokenOutsideTheVocabularyIsRefused() throws {
        let fixture = try EngineFixture()
        let curriculum = try Self.curriculum(fixture, sequenceLength: 64, lookahead: 4, pad: 128_256, file: "badpad.yaml")
        let error = #expect(throws: EngineError.self) { _ = try GlobalStream(curriculum: curriculum) }
        let message = error?.message ?? ""
        #expect(message.contains("badpad.yaml") && message.contains("pad_token 128256") && message.contains("128256 ids"), "\(message)")
    }
}
