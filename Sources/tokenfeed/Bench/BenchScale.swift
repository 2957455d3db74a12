import ArgumentParser
import Dispatch
import Foundation
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedMixing
import TokenfeedShards
import TokenfeedSystem

/// `tokenfeed bench scale`: resident memory, time and bytes read to reach READY over many datasets
/// and shards, and the first batch at step 0 and after a far resume, for `concat` and `bestfit`
/// (issue 9), each measured in a fresh process.
struct BenchScale: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Measure start-up at scale: resident memory, seconds and bytes read until READY, first batch at step 0 and after a far resume.",
        discussion: """
            Generates (once, in --work) DATASETS folders of SHARDS shards of DOCUMENTS documents each (1 to 8 \
            tokens a document, metadata-realistic counts, tiny frames) with their manifests and a curriculum \
            mixing them equally (sequences of 4,096 tokens), once with concat and once with bestfit packing \
            (look-ahead 64). Then, for each packing in --packing, --runs times each at step 0 and at --far-step, \
            starts a fresh `tokenfeed bench scale --measure` that opens the stream as the daemon does \
            (manifests, no shard read: READY), then starts a feed of batches of 8 sequences at that step (the \
            daemon's preloader and look-ahead) and waits for its first batch. It reports the resident set at \
            READY and after the first batch, the seconds to READY and from there to the first batch, and the \
            bytes read (/proc/self/io rchar). With bestfit the row counts live in WORK/bestfit-rows: it is \
            emptied first and filled by one cold count (reported), as a daemon's state directory is once. \
            With bestfit and --cold-far-resume (default), the far resume is also measured --runs times each \
            with an emptied cache: alone, right after starting the daemon's background count \
            (BestFitBackgroundCount, a quarter of the cores at nice 19), once it has counted half of the \
            shards, and once it has ended; its \
            first batch is timed from the resume, not from READY. \
            Prints the runs and the medians as JSON.
            """)

    @Option(help: "Datasets.")
    var datasets = 72
    @Option(help: "Shards per dataset.")
    var shards = 1000
    @Option(help: "Documents per shard.")
    var documents = 100
    @Option(help: "Fresh processes to measure per packing and step (the median is reported).")
    var runs = 3
    @Option(help: "Packings to measure: concat, bestfit or both.")
    var packing = "both"
    @Option(help: "The step of the far resume (batches of 8 sequences of one rank).")
    var farStep: UInt64 = 3_000_000
    @Option(help: "Working folder, kept and reused between invocations with the same shape (default: a temporary folder, removed).")
    var work: String?
    @Flag(help: .hidden)
    var measure = false
    @Flag(help: .hidden)
    var warm = false
    @Option(help: .hidden)
    var step: UInt64 = 0
    @Option(help: .hidden)
    var background = "off"
    @Flag(inversion: .prefixedNo, help: "With bestfit: also measure the far resume with an empty row-count cache: without a background count, while the daemon's background count runs, and once it has ended.")
    var coldFarResume = true

    func run() throws {
        let dir = work ?? (NSTemporaryDirectory() + "/tokenfeed-bench-scale-\(getpid())")
        if measure { return try measureOnce(dir) }
        defer { if work == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let packings = packing == "both" ? ["concat", "bestfit"] : [packing]
        guard packings.allSatisfy({ $0 == "concat" || $0 == "bestfit" }) else {
            throw ValidationError("--packing: \(packing) is not concat, bestfit or both")
        }
        let generated = try generate(dir)
        var output: [String: Any] = [:]
        for packing in packings {
            var extra: [String: Double] = [:]
            if packing == "bestfit" {
                try? FileManager.default.removeItem(atPath: dir + "/bestfit-rows")
                extra = try child(dir, ["--packing", packing, "--warm"])
            }
            var results: [UInt64: [[String: Double]]] = [:]
            for _ in 0 ..< runs {
                for step in [0, farStep] {
                    results[step, default: []].append(try child(dir, ["--packing", packing, "--step", String(step)]))
                }
            }
            func median(_ step: UInt64, _ key: String) -> Double {
                let values = (results[step] ?? []).compactMap { $0[key] }.sorted()
                return values.isEmpty ? 0 : values[values.count / 2]
            }
            let shardCount = Double(datasets * shards)
            var summary: [String: Double] = [
                "datasets": Double(datasets), "shards": shardCount, "documents": shardCount * Double(documents),
                "generate_seconds": generated, "runs": Double(runs), "far_step": Double(farStep),
                "ready_seconds_median": median(0, "ready_seconds"), "process_seconds_median": median(0, "process_seconds"),
                "rss_bytes_at_ready_median": median(0, "rss_bytes_at_ready"), "rss_bytes_after_first_batch_median": median(0, "rss_bytes"),
                "read_bytes_median": median(0, "read_bytes"), "read_bytes_per_dataset_median": median(0, "read_bytes") / Double(datasets),
                "rss_bytes_per_shard_above_64MiB": max(0, median(0, "rss_bytes_at_ready") - 64 * 1_048_576) / shardCount,
                "first_batch_seconds_median": median(0, "first_batch_seconds"),
                "far_ready_seconds_median": median(farStep, "ready_seconds"),
                "far_first_batch_seconds_median": median(farStep, "first_batch_seconds"),
                "far_rss_bytes_median": median(farStep, "rss_bytes"),
                "far_read_bytes_median": median(farStep, "read_bytes"),
            ]
            if let cold = extra["cold_count_seconds"] { summary["bestfit_cold_count_seconds"] = cold }
            if packing == "bestfit" && coldFarResume {
                // An empty cache each time: the far resume counts alone ("off"), while the daemon's
                // background count runs ("running"), or after it has ended ("ended").
                var cold: [String: [[String: Double]]] = [:]
                for _ in 0 ..< runs {
                    for mode in ["off", "running", "half", "ended"] {
                        try? FileManager.default.removeItem(atPath: dir + "/bestfit-rows")
                        cold[mode, default: []].append(try child(dir, ["--packing", packing, "--step", String(farStep), "--background", mode]))
                    }
                }
                func coldMedian(_ mode: String, _ key: String) -> Double {
                    let values = (cold[mode] ?? []).compactMap { $0[key] }.sorted()
                    return values.isEmpty ? 0 : values[values.count / 2]
                }
                for mode in ["off", "running", "half", "ended"] {
                    summary["cold_far_first_batch_seconds_median_background_\(mode)"] = coldMedian(mode, "first_batch_seconds")
                }
                summary["background_count_seconds_median"] = coldMedian("ended", "background_seconds")
                output["bestfit_cold_far_resume"] = cold.keys.sorted().map { ["background": $0, "results": cold[$0]!] as [String: Any] }
            }
            output[packing] = ["runs": results.keys.sorted().map { ["step": $0, "results": results[$0]!] as [String: Any] }, "summary": summary]
        }
        let json = try JSONSerialization.data(withJSONObject: output, options: [.sortedKeys])
        print(String(decoding: json, as: UTF8.self))
    }

    /// Runs `tokenfeed bench scale --measure --work DIR ARGUMENTS` and returns its figures, with
    /// `process_seconds` (exec to exit) added.
    private func child(_ dir: String, _ arguments: [String]) throws -> [String: Double] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = ["bench", "scale", "--measure", "--work", dir] + arguments
        let out = Pipe()
        process.standardOutput = out
        let launched = DispatchTime.now().uptimeNanoseconds
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              var object = try JSONSerialization.jsonObject(with: data) as? [String: Double] else {
            throw ValidationError("the measuring process failed: \(String(decoding: data, as: UTF8.self))")
        }
        object["process_seconds"] = Double(DispatchTime.now().uptimeNanoseconds - launched) / 1e9
        return object
    }

    /// Writes the corpus and curriculum unless `dir` holds them for this shape. Returns the seconds taken.
    private func generate(_ dir: String) throws -> Double {
        let shape = "\(datasets)x\(shards)x\(documents)"
        let marker = dir + "/shape"
        if (try? String(contentsOfFile: marker, encoding: .utf8)) == shape {
            try writeCurricula(dir)
            return 0
        }
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        let start = DispatchTime.now().uptimeNanoseconds
        let names = (0 ..< datasets).map { String(format: "ds%03d", $0) }
        let failures = ParallelResults<String?>(count: datasets)
        DispatchQueue.concurrentPerform(iterations: datasets) { d in
            do {
                let folder = dir + "/data/" + names[d]
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                var rng = SplitMix64(seed: UInt64(d + 1))
                var document: [UInt32] = []
                for s in 0 ..< shards {
                    let writer = try ShardWriter(path: folder + String(format: "/%05d.zst", s), tokenWidth: .uint16,
                                                 vocabularySize: 50_000, tokensPerFrame: 4096, level: 1, parallelism: 1)
                    for _ in 0 ..< documents {
                        document.removeAll(keepingCapacity: true)
                        for _ in 0 ... rng.next(below: 8) { document.append(UInt32(rng.next(below: 50_000))) }
                        try writer.write(tokens: document)
                        try writer.endDocument()
                    }
                    try writer.finish()
                }
                try DatasetManifest.build(shardPaths: try DatasetFolder.shardPaths(in: folder)).write(folder: folder)
                failures.set(d, nil)
            } catch {
                failures.set(d, "\(error)")
            }
        }
        if let failure = failures.values.compactMap({ $0 }).first { throw ValidationError(failure) }
        try writeCurricula(dir)
        try shape.write(toFile: marker, atomically: true, encoding: .utf8)
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// Writes `scale-concat.yaml` and `scale-bestfit.yaml`: every dataset at weight 1, one stage.
    private func writeCurricula(_ dir: String) throws {
        for packing in ["concat", "bestfit"] {
            let packingLine = packing == "concat" ? "" : "packing: {mode: bestfit, pad_token: 0, lookahead: 64}\n"
            var yaml = "sequence_length: 4096\nseed: 5\n\(packingLine)stages:\n  - name: all\n    start: 0\n    end: 100T\n    mixture:\n"
            for d in 0 ..< datasets { yaml += "      " + String(format: "ds%03d", d) + ": 1\n" }
            try yaml.write(toFile: dir + "/scale-\(packing).yaml", atomically: true, encoding: .utf8)
        }
    }

    /// Opens the stream from the manifests (READY), then either counts every bestfit row (`--warm`) or
    /// starts a feed at `--step` and waits for its first batch; prints what it took.
    private func measureOnce(_ dir: String) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        let readBefore = Self.bytesRead()
        let curriculum = try CurriculumLoader.load(path: dir + "/scale-\(packing).yaml", dataRoot: dir + "/data")
        let stream = try GlobalStream(curriculum: curriculum, bestFitCacheDirectory: packing == "bestfit" ? dir + "/bestfit-rows" : nil)
        let ready = DispatchTime.now().uptimeNanoseconds
        let rssAtReady = ResidentMemory.current()
        var json: [String: Double] = [
            "ready_seconds": Double(ready - start) / 1e9, "rss_bytes_at_ready": Double(rssAtReady),
            "shards": Double(stream.datasets.reduce(0) { $0 + $1.shards.count }),
            "documents": Double(stream.datasets.reduce(UInt64(0)) { $0 + $1.documentCount }),
        ]
        if warm {
            try stream.countBestFitRows()
            json["cold_count_seconds"] = Double(DispatchTime.now().uptimeNanoseconds - ready) / 1e9
        } else {
            var pass: BestFitBackgroundCount?
            let ended = LockedValue<BestFitBackgroundCount.Outcome?>(nil)
            if background != "off" {
                pass = BestFitBackgroundCount.start(stream: stream, threads: BestFitBackgroundCount.defaultThreads) { outcome in
                    ended.withLock { $0 = outcome }
                }
                if background == "ended" {
                    while ended.withLock({ $0 }) == nil { usleep(10_000) }
                    json["background_seconds"] = ended.withLock { $0 }!.seconds
                } else if background == "half" {
                    let shards = stream.datasets.reduce(0) { $0 + $1.shards.count }
                    while stream.bestFitCountStatistics.shardsCounted * 2 < shards { usleep(10_000) }
                    json["background_seconds"] = Double(DispatchTime.now().uptimeNanoseconds - ready) / 1e9
                }
            }
            let resumed = DispatchTime.now().uptimeNanoseconds
            let feed = RankFeed(stream: stream, slice: RankSlice(rank: 0, worldSize: 1, batchSize: 8), startStep: step,
                                ringSlots: 8, preloadBytes: 256 << 20)
            feed.start()
            guard let slot = feed.ring.acquireFull() else { throw ValidationError("the feed ended before its first batch") }
            json["first_batch_seconds"] = Double(DispatchTime.now().uptimeNanoseconds - resumed) / 1e9
            pass?.cancel()
            feed.ring.release(slot)
            feed.stop()
            while let slot = feed.ring.acquireFull() { feed.ring.release(slot) }
            while !feed.isFinished { usleep(1000) }
        }
        json["rss_bytes"] = Double(ResidentMemory.current())
        json["read_bytes"] = Double(Self.bytesRead() - readBefore)
        json["index_pages_read"] = Double(IndexPageCache.shared.pagesRead)
        print(String(decoding: try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), as: UTF8.self))
    }

    /// Bytes this process has read through read(2) and friends (/proc/self/io `rchar`).
    static func bytesRead() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("rchar:") {
            return Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return 0
    }
}
