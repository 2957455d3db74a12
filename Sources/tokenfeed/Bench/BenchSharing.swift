import ArgumentParser
import Foundation
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedShards

/// `tokenfeed bench sharing`: frames decompressed per node for a node's ranks of a large
/// data-parallel job, with a frame cache per session (before issue 9.6) and with one shared cache.
struct BenchSharing: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sharing",
        abstract: "Count frames decompressed vs frames touched for a node's ranks of a data-parallel job.",
        discussion: """
            Generates two synthetic datasets and a curriculum of exactly --steps steps of --world-size × --batch-size \
            sequences, then runs the feeds of ranks 0 ..< --local-ranks together, consuming one batch of each rank in \
            turn (ranks of one job advance in step), once with a frame cache per feed and once with one cache shared by \
            them. Prints the distinct frames the node's rows touch (planned offline), the frames each variant \
            decompressed and the ratio, and the same ratio over every rank of the job as if each had its own cache.
            """)

    @Option(help: "Data-parallel size of the simulated job.")
    var worldSize = 192

    @Option(help: "Ranks on the node (ranks 0 ..< N).")
    var localRanks = 8

    @Option(help: "Sequences per rank per step.")
    var batchSize = 2

    @Option(help: "Sequence length.")
    var sequenceLength = 1024

    @Option(help: "Steps in the run.")
    var steps = 60

    @Option(name: .customLong("preload-mib"), help: "Preload budget in MiB (per feed before, shared after).")
    var preloadMiB = 256

    @Option(help: "Working folder (default: a temporary folder; an existing corpus there is reused).")
    var work: String?

    func run() throws {
        let dir = work ?? (NSTemporaryDirectory() + "/tokenfeed-bench-sharing-\(getpid())")
        defer { if work == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let globalTokens = UInt64(steps) * UInt64(worldSize) * UInt64(batchSize) * UInt64(sequenceLength)
        // Each dataset gets about half the run, plus a margin: the run stays inside one epoch.
        let perDataset = Int(globalTokens / 2 + globalTokens / 4) + 1_000_000
        _ = try DemoCorpus(tokensPerDataset: perDataset, shardsPerDataset: 4, tokensPerFrame: 65_536)
            .generate([(name: "web", folder: dir + "/data/web"), (name: "code", folder: dir + "/data/code")])
        let yaml = "sequence_length: \(sequenceLength)\nseed: 7\nstages:\n  - name: all\n    start: 0\n    end: \(globalTokens)\n"
            + "    mixture: {web: 0.6, code: 0.4}\n"
        try yaml.write(toFile: dir + "/sharing.yaml", atomically: true, encoding: .utf8)
        let stream = try GlobalStream(curriculum: try CurriculumLoader.load(path: dir + "/sharing.yaml", dataRoot: dir + "/data"))
        let slices = (0 ..< localRanks).map { RankSlice(rank: $0, worldSize: worldSize, batchSize: batchSize) }
        let stepCount = stream.plan.totalSequences / UInt64(worldSize * batchSize)
        print("tokenfeed bench sharing: ranks 0..<\(localRanks) of \(worldSize), \(batchSize) × \(sequenceLength + 1) tokens a rank, "
              + "\(stepCount) steps, preload \(preloadMiB) MiB, frames of 65,536 tokens")

        var planner = stream.planner()
        func touched(_ slice: RankSlice) throws -> Set<FrameKey> {
            var keys = Set<FrameKey>()
            var pieces: [SequencePiece] = []
            for step in 0 ..< stepCount {
                for j in 0 ..< slice.batchSize {
                    pieces.removeAll(keepingCapacity: true)
                    let record = try planner.plan(sequence: slice.sequence(step: step, j), step: step, appendingTo: &pieces)
                    for piece in pieces {
                        let metadata = stream.datasets[Int(record.dataset)].shards[Int(piece.shard)].metadata
                        let first = metadata.frame(containingToken: piece.offset)
                        let last = metadata.frame(containingToken: piece.offset + UInt64(piece.length) - 1)
                        for f in first ... last { keys.insert(FrameKey(dataset: Int(record.dataset), shard: Int(piece.shard), frame: f)) }
                    }
                }
            }
            return keys
        }
        let perRank = try slices.map(touched)
        let node = perRank.reduce(into: Set<FrameKey>()) { $0.formUnion($1) }
        print("frames the node's rows touch: \(node.count) distinct; \(perRank.map(\.count).reduce(0, +)) summed over its \(localRanks) ranks")

        let budget = preloadMiB << 20
        let own = feedRun(stream, slices: slices) { _ in nil }
        let shared = FrameCache(stream: stream, budgetBytes: budget)
        let sharedRun = feedRun(stream, slices: slices) { _ in shared }
        func ratio(_ n: Int) -> String { String(format: "%.2f×", Double(n) / Double(max(1, node.count))) }
        print("frame cache per session (before): \(own) frames decompressed, \(ratio(own)) the frames touched")
        print("one shared frame cache (after):   \(sharedRun) frames decompressed, \(ratio(sharedRun)) the frames touched")

        // The whole job, each rank with its own cache: what every node decompressed before.
        var sum = 0
        var all = Set<FrameKey>()
        for rank in 0 ..< worldSize {
            let keys = try touched(RankSlice(rank: rank, worldSize: worldSize, batchSize: batchSize))
            sum += keys.count
            all.formUnion(keys)
        }
        print(String(format: "whole job of %d ranks, a cache per rank: %d frames decompressed for %d distinct (%.2f×)",
                     worldSize, sum, all.count, Double(sum) / Double(max(1, all.count))))
    }

    /// Runs one feed per slice to the end of the run, one batch of each in turn; returns the frames
    /// their caches decompressed (each distinct cache counted once).
    private func feedRun(_ stream: GlobalStream, slices: [RankSlice], cache: (Int) -> FrameCache?) -> Int {
        let feeds = slices.enumerated().map { r, slice in
            RankFeed(stream: stream, slice: slice, startStep: 0, ringSlots: 8, preloadBytes: preloadMiB << 20, frameCache: cache(r))
        }
        for feed in feeds { feed.start() }
        var open = feeds.count
        var done = [Bool](repeating: false, count: feeds.count)
        while open > 0 {
            for (r, feed) in feeds.enumerated() where !done[r] {
                if let slot = feed.ring.acquireFull() { feed.ring.release(slot) } else { done[r] = true; open -= 1 }
            }
        }
        var seen = Set<ObjectIdentifier>()
        var total = 0
        for feed in feeds where seen.insert(ObjectIdentifier(feed.frameCache)).inserted {
            total += feed.frameCache.framesDecompressed.load(ordering: .relaxed)
        }
        return total
    }
}
