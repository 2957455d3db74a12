import ArgumentParser
import Dispatch
import Foundation
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedMixing
import TokenfeedShards

/// `tokenfeed bench scale`: resident memory, time and bytes read to reach READY over many datasets
/// and shards (issue 9), each measured in a fresh process.
struct BenchScale: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Measure start-up at scale: resident memory, seconds and bytes read until the first batch is planned.",
        discussion: """
            Generates (once, in --work) DATASETS folders of SHARDS shards of DOCUMENTS documents each (1 to 8 \
            tokens a document, metadata-realistic counts, tiny frames) with their manifests and a curriculum \
            mixing them equally. Then, --runs times, starts a fresh `tokenfeed bench scale --measure` that opens \
            the stream as the daemon does (manifests, no shard read), plans the first batch of 8 sequences of \
            4,096 tokens (reading the index pages it needs), and reports its resident set, the seconds from \
            opening to the planned batch (and the whole process's, exec to exit), and the bytes it read \
            (/proc/self/io rchar). Prints the runs and the medians as JSON.
            """)

    @Option(help: "Datasets.")
    var datasets = 72
    @Option(help: "Shards per dataset.")
    var shards = 1000
    @Option(help: "Documents per shard.")
    var documents = 100
    @Option(help: "Fresh processes to measure (the median is reported).")
    var runs = 3
    @Option(help: "Working folder, kept and reused between invocations with the same shape (default: a temporary folder, removed).")
    var work: String?
    @Flag(help: .hidden)
    var measure = false

    func run() throws {
        let dir = work ?? (NSTemporaryDirectory() + "/tokenfeed-bench-scale-\(getpid())")
        if measure { return try measureOnce(dir) }
        defer { if work == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let generated = try generate(dir)
        var results: [[String: Double]] = []
        for _ in 0 ..< runs {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            process.arguments = ["bench", "scale", "--measure", "--work", dir]
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
            results.append(object)
        }
        func median(_ key: String) -> Double {
            let values = results.compactMap { $0[key] }.sorted()
            return values.isEmpty ? 0 : values[values.count / 2]
        }
        let shardCount = Double(datasets * shards)
        let summary: [String: Double] = [
            "datasets": Double(datasets), "shards": shardCount, "documents": shardCount * Double(documents),
            "generate_seconds": generated, "runs": Double(runs),
            "ready_seconds_median": median("ready_seconds"), "process_seconds_median": median("process_seconds"), "rss_bytes_median": median("rss_bytes"),
            "read_bytes_median": median("read_bytes"), "read_bytes_per_dataset_median": median("read_bytes") / Double(datasets),
            "rss_bytes_per_shard_above_64MiB": max(0, median("rss_bytes") - 64 * 1_048_576) / shardCount,
        ]
        let json = try JSONSerialization.data(withJSONObject: ["runs": results, "summary": summary], options: [.sortedKeys])
        print(String(decoding: json, as: UTF8.self))
    }

    /// Writes the corpus and curriculum unless `dir` holds them for this shape. Returns the seconds taken.
    private func generate(_ dir: String) throws -> Double {
        let shape = "\(datasets)x\(shards)x\(documents)"
        let marker = dir + "/shape"
        if (try? String(contentsOfFile: marker, encoding: .utf8)) == shape { return 0 }
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
        var yaml = "sequence_length: 4096\nseed: 5\nstages:\n  - name: all\n    start: 0\n    end: 100T\n    mixture:\n"
        for name in names { yaml += "      \(name): 1\n" }
        try yaml.write(toFile: dir + "/scale.yaml", atomically: true, encoding: .utf8)
        try shape.write(toFile: marker, atomically: true, encoding: .utf8)
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// Opens the stream from the manifests, plans the first batch, and prints what it took.
    private func measureOnce(_ dir: String) throws {
        let start = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
        let readBefore = Self.bytesRead()
        let stream = try GlobalStream(curriculum: try CurriculumLoader.load(path: dir + "/scale.yaml", dataRoot: dir + "/data"))
        var assembler = BatchAssembler(stream: stream, slice: RankSlice(rank: 0, worldSize: 1, batchSize: 8))
        try assembler.plan(step: 0)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds) / 1e9 - start
        let json: [String: Double] = [
            "ready_seconds": seconds, "rss_bytes": Double(ResidentMemory.current()),
            "read_bytes": Double(Self.bytesRead() - readBefore),
            "shards": Double(stream.datasets.reduce(0) { $0 + $1.shards.count }),
            "documents": Double(stream.datasets.reduce(UInt64(0)) { $0 + $1.documentCount }),
            "index_pages_read": Double(IndexPageCache.shared.pagesRead),
        ]
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
