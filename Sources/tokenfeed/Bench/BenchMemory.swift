import ArgumentParser
import Foundation
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedShards

/// `tokenfeed bench memory`: resident memory of a feed over many datasets under a preload budget.
struct BenchMemory: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Stream many datasets through one rank's feed and report the growth of resident memory.",
        discussion: """
            Generates DATASETS synthetic datasets (one stage mixing all of them equally), opens them, notes the \
            resident set size, then streams STEPS batches through a RankFeed with the given preload budget and \
            reports the peak resident growth beside the budget and the ring's size. Prints one JSON object.
            """)

    @Option(help: "Number of datasets.")
    var datasets = 60

    @Option(name: .customLong("preload-kib"), help: "Preload budget in KiB.")
    var preloadKiB = 4096

    @Option(help: "Batches to stream.")
    var steps = 400

    @Option(help: "Sequences per batch.")
    var batchSize = 8

    @Option(help: "Sequence length.")
    var sequenceLength = 2048

    @Option(help: "Working folder (default: a temporary folder).")
    var work: String?

    func run() throws {
        let dir = work ?? (NSTemporaryDirectory() + "/tokenfeed-bench-memory-\(getpid())")
        defer { if work == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let names = (0 ..< datasets).map { String(format: "ds%03d", $0) }
        _ = try DemoCorpus(tokensPerDataset: 300_000, shardsPerDataset: 2, tokensPerFrame: 32_768)
            .generate(names.map { (name: $0, folder: dir + "/data/" + $0) })
        var yaml = "sequence_length: \(sequenceLength)\nseed: 5\nstages:\n  - name: all\n    start: 0\n    end: 100T\n    mixture:\n"
        for name in names { yaml += "      \(name): 1\n" }
        try yaml.write(toFile: dir + "/memory.yaml", atomically: true, encoding: .utf8)
        let stream = try GlobalStream(curriculum: try CurriculumLoader.load(path: dir + "/memory.yaml", dataRoot: dir + "/data"))
        let before = ResidentMemory.current()
        let feed = RankFeed(stream: stream, slice: RankSlice(rank: 0, worldSize: 1, batchSize: batchSize), startStep: 0,
                            ringSlots: 8, preloadBytes: preloadKiB << 10)
        feed.start()
        var consumed = 0
        var peak = ResidentMemory.current()
        while consumed < steps, let slot = feed.ring.acquireFull() {
            feed.ring.release(slot)
            consumed += 1
            if consumed % 16 == 0 { peak = max(peak, ResidentMemory.current()) }
        }
        peak = max(peak, ResidentMemory.current())
        feed.stop()
        let ringBytes = feed.ring.slotCount * feed.ring.slotStride
        let frameBytes = stream.datasets.lazy.flatMap(\.shards).map { Preloader.largestFrameBytes($0) + $0.largestFrame }.max() ?? 0
        let budget = max(preloadKiB << 10, 2 * frameBytes)
        print("{\"datasets\":\(datasets),\"steps\":\(consumed),\"preload_budget_bytes\":\(budget),\"ring_bytes\":\(ringBytes),"
              + "\"rss_before_bytes\":\(before),\"rss_peak_bytes\":\(peak),\"rss_growth_bytes\":\(peak - min(peak, before))}")
    }
}

/// The process's resident set size, from /proc/self/statm.
enum ResidentMemory {
    static func current() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
