import ArgumentParser
import Dispatch
import Foundation
import TokenfeedClient
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedShards

/// `tokenfeed bench …`: speed and memory figures for docs/BENCHMARKS.md.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks: engine throughput (default) and resident memory under a preload budget.",
        subcommands: [BenchThroughput.self, BenchMemory.self, BenchStartup.self, BenchSharing.self, BenchScale.self],
        defaultSubcommand: BenchThroughput.self)
}

/// `tokenfeed bench throughput`: the engine against baselines measured in the same run.
struct BenchThroughput: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "throughput",
        abstract: "Measure the engine's throughput (packer + preloader + ring) against zstd and memcpy baselines.",
        discussion: """
            Builds a data root from the bundled real-text fixture (fixtures/corpus/llama3-text) and a synthetic Zipf \
            dataset, then runs each scenario --runs times, interleaved, and prints medians and ratios to the baseline \
            measured in the same run (the machine is shared and noisy: compare ratios, not absolute figures). \
            Record results in docs/BENCHMARKS.md with the command line.
            """)

    @Option(help: "Repetitions of each scenario (the median is reported).")
    var runs = 5

    @Option(help: "Steps consumed per engine run.")
    var steps = 300

    @Option(help: "Sequences per batch.")
    var batchSize = 8

    @Option(help: "Sequence length.")
    var sequenceLength = 4096

    @Option(help: "Preload budget in MiB.")
    var preloadMiB = 256

    @Option(help: "Working folder (default: a temporary folder).")
    var work: String?

    func run() throws {
        let dir = work ?? (NSTemporaryDirectory() + "/tokenfeed-bench-\(getpid())")
        defer { if work == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let stream = try Self.prepare(in: dir, sequenceLength: sequenceLength)
        let rowTokens = sequenceLength + 1
        print("tokenfeed bench: \(runs) runs, \(steps) steps × \(batchSize) sequences of \(rowTokens) tokens, preload \(preloadMiB) MiB, \(ProcessInfo.processInfo.activeProcessorCount) cores")
        print("data: real text \(stream.datasets[0].tokenCount) tokens in \(stream.datasets[0].shards.count) shards; synthetic Zipf \(stream.datasets[1].tokenCount) tokens\n")

        var engine: [Double] = [], engineCold: [Double] = [], engineTiny: [Double] = [], zstdFloor: [Double] = [], memcpyRate: [Double] = []
        var firstBatch: [Double] = [], socket: [Double] = []
        let daemon = try DaemonChild(socket: dir + "/bench.sock", arguments: [
            "--curriculum", dir + "/bench.yaml", "--data-root", dir + "/data", "--preload-bytes", "\(preloadMiB << 20)"])
        defer { _ = daemon.stop() }
        for run in 0 ..< runs {
            warm(stream)
            let (rate, latency) = measureEngine(stream, budget: preloadMiB << 20)
            engine.append(rate)
            firstBatch.append(latency)
            engineCold.append(measureEngine(stream, budget: 4 << 20).rate)
            socket.append(try measureSocket(daemon.socket, rank: UInt32(run)))
            engineTiny.append(measureEngine(stream, budget: 1).rate)
            zstdFloor.append(measureDecompression(stream))
            memcpyRate.append(measureMemcpy(bytes: batchSize * rowTokens * 4))
        }
        let zstd = median(zstdFloor)
        func line(_ name: String, _ values: [Double], unit: String = "M tokens/s") {
            let m = median(values)
            let ratio = String(format: "%.2f×", m / zstd)
            print(name.padding(toLength: 44, withPad: " ", startingAt: 0)
                + (String(format: "%9.1f ", m / 1e6) + unit).padding(toLength: 22, withPad: " ", startingAt: 0)
                + ratio.padding(toLength: 8, withPad: " ", startingAt: 0)
                + "runs: " + values.map { String(format: "%.1f", $0 / 1e6) }.joined(separator: " "))
        }
        print("scenario".padding(toLength: 44, withPad: " ", startingAt: 0) + "median".padding(toLength: 22, withPad: " ", startingAt: 0) + "vs zstd")
        line("zstd decompression, 1 thread (baseline)", zstdFloor)
        line("engine, \(preloadMiB) MiB budget (corpus resident)", engine)
        line("engine, 4 MiB budget (< corpus: cold frames)", engineCold)
        line("engine, budget of 2 frames (no look-ahead)", engineTiny)
        line("tokenfeedd → socket → Swift client, \(preloadMiB) MiB", socket)
        line("memcpy of a batch's token block (in cache)", memcpyRate)
        print("\nengine start-up (feed created → first batch, \(preloadMiB) MiB budget faulted in): median "
              + String(format: "%.1f ms", median(firstBatch) * 1e3) + ", runs: "
              + firstBatch.map { String(format: "%.1f", $0 * 1e3) }.joined(separator: " "))
    }

    /// Imports the fixture and a synthetic dataset, and writes a one-stage curriculum over them.
    static func prepare(in dir: String, sequenceLength: Int) throws -> GlobalStream {
        let fm = FileManager.default
        let web = dir + "/data/web", syn = dir + "/data/syn"
        if !fm.fileExists(atPath: web) {
            try fm.createDirectory(atPath: web, withIntermediateDirectories: true)
            for part in ["part_00000", "part_00001"] {
                _ = try DatatroveImporter.importFile("fixtures/corpus/llama3-text/\(part).ds", into: web,
                                                     options: ImportOptions(tokensPerFrame: 65_536, vocabularySize: 128_256))
            }
        }
        if !fm.fileExists(atPath: syn) {
            _ = try DemoCorpus(tokensPerDataset: 2_000_000, shardsPerDataset: 2, tokensPerFrame: 65_536)
                .generate([(name: "syn", folder: syn)])
        }
        let yaml = """
            sequence_length: \(sequenceLength)
            seed: 1
            stages:
              - name: bench
                start: 0
                end: 1T
                mixture:
                  web: 0.5
                  syn: 0.5
            """
        try yaml.write(toFile: dir + "/bench.yaml", atomically: true, encoding: .utf8)
        return try GlobalStream(curriculum: try CurriculumLoader.load(path: dir + "/bench.yaml", dataRoot: dir + "/data"))
    }

    /// Reads every shard once so the measurement does not measure the disk.
    private func warm(_ stream: GlobalStream) {
        for shard in stream.datasets.lazy.flatMap(\.shards) { _ = FileManager.default.contents(atPath: shard.path) }
    }

    /// Steady-state tokens per second (first batch to last) and the time to the first batch.
    private func measureEngine(_ stream: GlobalStream, budget: Int) -> (rate: Double, firstBatch: Double) {
        let feed = RankFeed(stream: stream, slice: RankSlice(rank: 0, worldSize: 1, batchSize: batchSize), startStep: 0,
                            ringSlots: 8, preloadBytes: budget)
        let created = DispatchTime.now().uptimeNanoseconds
        feed.start()
        var consumed = 0
        var checksum: UInt64 = 0
        var start: UInt64 = 0
        while consumed <= steps, let slot = feed.ring.acquireFull() {
            if consumed == 0 { start = DispatchTime.now().uptimeNanoseconds }
            checksum &+= UInt64(slot.payload.load(fromByteOffset: 0, as: UInt32.self))
            feed.ring.release(slot)
            consumed += 1
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        feed.stop()
        while let slot = feed.ring.acquireFull() { feed.ring.release(slot) }
        if checksum == 42 { print("") }     // keep the loads
        return (Double((consumed - 1) * batchSize * (sequenceLength + 1)) / seconds, Double(start - created) / 1e9)
    }

    /// Tokens per second one Swift client receives from the daemon (each run is a new rank of a job of
    /// `runs` ranks, so every run starts cold at step 0 of its own slice).
    private func measureSocket(_ path: String, rank: UInt32) throws -> Double {
        let client = try TokenfeedClient.connect(socketPath: path, rank: rank, worldSize: UInt32(runs),
                                                 batchSize: UInt32(batchSize), credits: 4)
        defer { client.close() }
        var consumed = 0
        var start: UInt64 = 0
        var checksum: UInt32 = 0
        while consumed <= steps, let batch = try client.next() {
            if consumed == 0 { start = DispatchTime.now().uptimeNanoseconds }
            checksum &+= batch.token(row: 0, position: 0)
            consumed += 1
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if checksum == 42 { print("") }
        return Double((consumed - 1) * batchSize * (sequenceLength + 1)) / seconds
    }

    /// Decompresses every frame of every shard on one thread: the floor of a cold stream per core.
    private func measureDecompression(_ stream: GlobalStream) -> Double {
        let shards = stream.datasets.lazy.flatMap(\.shards)
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, shards.map { Preloader.largestFrameBytes($0) }.max() ?? 0), alignment: 64)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, shards.map(\.largestFrame).max() ?? 0), alignment: 64)
        defer { out.deallocate(); scratch.deallocate() }
        let decompressor = ZstdDecompressor()
        var tokens = 0
        let start = DispatchTime.now().uptimeNanoseconds
        for shard in shards {
            for k in 0 ..< shard.metadata.frameCount {
                try? shard.decodeFrame(k, into: out, scratch: scratch, decompressor: decompressor)
                tokens += shard.metadata.tokenRange(ofFrame: k).count
            }
        }
        return Double(tokens) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }

    /// Copies a token block repeatedly between two reused buffers (in tokens of 4 bytes per second).
    private func measureMemcpy(bytes: Int) -> Double {
        let a = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 64)
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 64)
        defer { a.deallocate(); b.deallocate() }
        a.initializeMemory(as: UInt8.self, repeating: 1)
        b.initializeMemory(as: UInt8.self, repeating: 2)
        let repeats = max(1, (512 << 20) / bytes)
        let start = DispatchTime.now().uptimeNanoseconds
        var sink: UInt8 = 0
        for i in 0 ..< repeats {
            a[i % bytes] = UInt8(truncatingIfNeeded: i)          // a new source each time: the copy cannot be elided
            b.copyMemory(from: UnsafeRawBufferPointer(a))
            sink &+= b[(i * 4093) % bytes]
        }
        if sink == 1 && repeats == 1 { print("") }
        return Double(repeats * bytes / 4) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}

func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    return s.isEmpty ? 0 : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
}
