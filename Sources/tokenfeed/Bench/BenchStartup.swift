import ArgumentParser
import Dispatch
import Foundation
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedMixing
import TokenfeedShards

/// `tokenfeed bench startup`: time from a feed's start to its first batch, and how much the preloader
/// planned before it, with the daemon's bounded look-ahead and with the 4,096-entry one it replaced.
struct BenchStartup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "startup",
        abstract: "Measure the first batch of a feed over many small documents (concat and bestfit), for two look-aheads.",
        discussion: """
            Generates one dataset of DOCUMENTS synthetic uint16 documents (lengths uniform in 2…2×MEAN, 4 shards, \
            65,536-token frames), then for each packing starts a RankFeed at step 0 --runs times, alternating the \
            daemon's look-ahead (16 steps, 4 frames a core) and the former one (4,096 demand entries), and prints \
            the medians of the time to the first batch and of the steps and frames planned before it.
            """)

    @Option(help: "Documents in the generated dataset.")
    var documents = 1_000_000

    @Option(help: "Mean document length in tokens.")
    var meanLength = 64

    @Option(help: "Repetitions (the median is reported).")
    var runs = 5

    @Option(help: "Sequences per batch.")
    var batchSize = 8

    @Option(help: "Sequence length.")
    var sequenceLength = 2048

    @Option(help: "Bestfit look-ahead (documents packed together).")
    var bestfitLookahead = 1024

    @Option(name: .customLong("preload-mib"), help: "Preload budget in MiB.")
    var preloadMiB = 256

    @Option(help: "Working folder (default: a temporary folder; an existing corpus there is reused).")
    var work: String?

    func run() throws {
        let dir = work ?? (NSTemporaryDirectory() + "/tokenfeed-bench-startup-\(getpid())")
        defer { if work == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let folder = dir + "/data/docs"
        if !FileManager.default.fileExists(atPath: folder) {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try Self.generate(folder: folder, documents: documents, meanLength: meanLength)
        }
        print("tokenfeed bench startup: \(documents) documents (mean \(meanLength) tokens), \(batchSize) × \(sequenceLength + 1) tokens a batch, "
              + "preload \(preloadMiB) MiB, \(runs) runs, \(ProcessInfo.processInfo.activeProcessorCount) cores")
        for packing in ["concat", "bestfit"] {
            let packingLine = packing == "concat" ? "" : "packing: {mode: bestfit, pad_token: 0, lookahead: \(bestfitLookahead)}\n"
            let yaml = "sequence_length: \(sequenceLength)\nseed: 3\n\(packingLine)stages:\n  - name: all\n    start: 0\n    end: 1T\n    mixture: {docs: 1}\n"
            try yaml.write(toFile: dir + "/\(packing).yaml", atomically: true, encoding: .utf8)
            let stream = try GlobalStream(curriculum: try CurriculumLoader.load(path: dir + "/\(packing).yaml", dataRoot: dir + "/data"))
            let variants: [(name: String, lookahead: Preloader.Lookahead)] = [
                ("bounded (\(Preloader.Lookahead.default.steps) steps, \(Preloader.Lookahead.default.frames) frames)", .default),
                ("4,096 entries (before)", .entries4096),
            ]
            var results = variants.map { _ in (seconds: [Double](), steps: [Double](), frames: [Double]()) }
            for _ in 0 ..< runs {
                for (v, variant) in variants.enumerated() {
                    let r = measure(stream, lookahead: variant.lookahead)
                    results[v].seconds.append(r.seconds)
                    results[v].steps.append(Double(r.steps))
                    results[v].frames.append(Double(r.frames))
                }
            }
            for (v, variant) in variants.enumerated() {
                print("\(packing), look-ahead \(variant.name): first batch median "
                      + String(format: "%.1f ms", median(results[v].seconds) * 1e3)
                      + " (runs: " + results[v].seconds.map { String(format: "%.1f", $0 * 1e3) }.joined(separator: " ") + ")"
                      + ", planned before it: \(Int(median(results[v].steps))) steps, \(Int(median(results[v].frames))) frames")
            }
        }
    }

    /// Starts a feed at step 0 and returns the time to its first batch and what was planned before it.
    private func measure(_ stream: GlobalStream, lookahead: Preloader.Lookahead) -> (seconds: Double, steps: Int, frames: Int) {
        let feed = RankFeed(stream: stream, slice: RankSlice(rank: 0, worldSize: 1, batchSize: batchSize), startStep: 0,
                            ringSlots: 8, preloadBytes: preloadMiB << 20, lookahead: lookahead)
        let start = DispatchTime.now().uptimeNanoseconds
        feed.start()
        guard let slot = feed.ring.acquireFull() else { return (0, 0, 0) }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        feed.ring.release(slot)
        feed.stop()
        while let slot = feed.ring.acquireFull() { feed.ring.release(slot) }
        while !feed.isFinished { usleep(1000) }
        return (seconds, feed.progress.stepsPlannedBeforeFirstBatch.load(ordering: .acquiring),
                feed.progress.framesPlannedBeforeFirstBatch.load(ordering: .relaxed))
    }

    /// Writes `documents` documents of random uint16 ids into 4 shards of `folder`.
    static func generate(folder: String, documents: Int, meanLength: Int) throws {
        var rng = SplitMix64(seed: 9)
        let shards = 4
        var tokens = [UInt16](repeating: 0, count: 2 * meanLength + 2)
        for s in 0 ..< shards {
            let writer = try ShardWriter(path: folder + "/" + String(format: "%05d.zst", s), tokenWidth: .uint16,
                                         vocabularySize: 65_536, tokensPerFrame: 65_536, level: 1)
            for _ in 0 ..< documents / shards {
                let length = 2 + Int(rng.next(below: UInt64(2 * meanLength)))
                for i in 0 ..< length { tokens[i] = UInt16(truncatingIfNeeded: rng.next() >> 40) }
                try writer.write(tokens: tokens[0 ..< length])
                try writer.endDocument()
            }
            _ = try writer.finish()
        }
    }
}
