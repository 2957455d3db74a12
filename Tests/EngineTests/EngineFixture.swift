import Foundation
import Testing
import TestSupport
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedMixing
import TokenfeedShards

/// A small data root for engine tests: real text (the llama3-text fixture, cut into several shards
/// with small frames), and a tiny synthetic uint16 dataset that wraps into many epochs.
final class EngineFixture: @unchecked Sendable {
    let dir = TemporaryDirectory("tokenfeed-engine")
    var dataRoot: String { dir.sub("data") }
    let sequenceLength = 64

    init(extraDatasets: Int = 0) throws {
        try SyntheticCorpus.writeTestDataRoot(dir.sub("data"))      // web, code, tiny
        for e in 0 ..< extraDatasets {
            let folder = dir.sub("data/extra\(e)", create: true)
            let docs = SyntheticCorpus.documents(seed: UInt64(1000 + e), count: 20, vocabulary: 128_256, meanLength: 200)
            try SyntheticCorpus.writeShard(docs, path: folder + "/0.zst", vocabulary: 128_256, tokensPerFrame: 1024)
        }
    }

    /// Writes a curriculum with three stages: 640 tokens of web/code, then a stage with tiny, then a long last one.
    func curriculum(extra: Int = 0, end: String = "200K") throws -> Curriculum {
        var yaml = """
        sequence_length: \(sequenceLength)
        seed: 11
        stages:
          - name: warmup
            start: 0
            end: 640
            mixture:
              web: 0.7
              code: 0.3
          - name: middle
            start: 640
            end: 2000
            mixture:
              web: 0.5
              code: 0.25
              tiny: 0.25
          - name: last
            start: 2000
            end: \(end)
            mixture:
              web: 3
              code: 1
              tiny: 1

        """
        for e in 0 ..< extra { yaml += "      extra\(e): 0.5\n" }
        let path = dir.sub("curriculum.yaml")
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return try CurriculumLoader.load(path: path, dataRoot: dataRoot)
    }

    /// Checks that 40 batches from a `RankFeed` (preloader, ring) started at each of `starts` with its
    /// budget equal the batches the `BatchAssembler` packs directly from the shards.
    static func expectFeedMatchesDirectAssembly(_ stream: GlobalStream, slice: RankSlice, starts: [(UInt64, Int)],
                                                sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
        for (start, budget) in starts {
            let feed = RankFeed(stream: stream, slice: slice, startStep: start, ringSlots: 4, preloadBytes: budget)
            feed.start()
            var direct = BatchAssembler(stream: stream, slice: slice)
            let frames = DirectFrameProvider(stream: stream)
            let block = UnsafeMutableRawBufferPointer.allocate(byteCount: direct.tokenBlockBytes, alignment: 64)
            defer { block.deallocate() }
            for step in start ..< start + 40 {
                guard let slot = feed.ring.acquireFull() else { Issue.record("feed ended early at \(step)", sourceLocation: sourceLocation); break }
                let batch = PackedBatch(layout: feed.layout, bytes: slot.payload)
                try direct.assemble(step: step, into: block, frames: frames)
                #expect(batch.step == step, sourceLocation: sourceLocation)
                #expect(Array(batch.tokens) == Array(block[..<direct.tokenBlockBytes]), "step \(step)", sourceLocation: sourceLocation)
                #expect(Array(batch.records) == direct.records, sourceLocation: sourceLocation)
                #expect(Array(batch.pieces) == direct.pieces, sourceLocation: sourceLocation)
                feed.ring.release(slot)
            }
            feed.stop()
            #expect(feed.failure == nil, sourceLocation: sourceLocation)
        }
    }
}

/// An independent model of a dataset's stream: shards decompressed with the stock `zstd` tool,
/// concatenated per epoch in ``EpochOrder``'s order.
struct ReferenceDataset {
    let name: String
    let shardTokens: [[UInt32]]          // file-name order
    let shardNames: [String]
    let width: TokenWidth
    let seed: UInt64

    init(folder: String, name: String, seed: UInt64) throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".zst") }.sorted()
        var tokens: [[UInt32]] = []
        var width = TokenWidth.uint32
        for f in files {
            let raw = try run("/usr/bin/zstd", ["-dc", folder + "/" + f]).stdout
            width = try ShardReader(path: folder + "/" + f).metadata.tokenWidth
            tokens.append(raw.withUnsafeBytes { b in
                width == .uint16 ? b.bindMemory(to: UInt16.self).map { UInt32(UInt16(littleEndian: $0)) }
                                 : b.bindMemory(to: UInt32.self).map { UInt32(littleEndian: $0) }
            })
        }
        self.name = name
        self.shardTokens = tokens
        self.shardNames = files
        self.width = width
        self.seed = seed
    }

    var epochTokens: Int { shardTokens.reduce(0) { $0 + $1.count } }

    /// Tokens [start, start + count) of the stream.
    func window(_ start: Int, _ count: Int) -> [UInt32] {
        var out: [UInt32] = []
        var p = start
        while out.count < count {
            let epoch = p / epochTokens
            var q = p % epochTokens
            for s in EpochOrder.shardOrder(datasetName: name, epoch: UInt64(epoch), shardCount: shardTokens.count, seed: seed) {
                if q < shardTokens[s].count {
                    let n = min(count - out.count, shardTokens[s].count - q)
                    out += shardTokens[s][q ..< q + n]
                    p += n
                    break
                }
                q -= shardTokens[s].count
            }
        }
        return out
    }
}
