import ArgumentParser
import CommandLineSupport
import Dispatch
import Foundation
import TokenfeedShards

/// `tokenfeed shard verify PATH...`
struct ShardVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check shards completely: structure, metadata and frame checksums, decompression.",
        discussion: """
            Prints one line per bad shard (file, frame, problem) and exits 1 if any is bad. Shards are checked \
            --jobs at a time; on a terminal, a progress line shows shards done, rate and ETA.
            """)

    @Argument(help: "Shard files or folders of shards.")
    var paths: [String]

    @Flag(help: "Also print a line for every good shard.")
    var verbose = false

    @Option(help: "Shards checked at once (default: the CPUs this process may use — its affinity mask and cgroup CPU quota).")
    var jobs: Int = AvailableProcessors.count

    func validate() throws {
        guard jobs >= 1 else { throw ValidationError("--jobs must be at least 1") }
    }

    func run() throws {
        let shards = try shardPaths(paths)
        let problems = ParallelResults<[ShardError]>(count: shards.count)
        let done = DoneCounter()
        let progressLine = ProgressLine.start(label: "verify", total: UInt64(shards.count), unit: "shards") { (done.value, nil) }
        let workers = min(jobs, max(shards.count, 1))
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            for i in stride(from: w, to: shards.count, by: workers) {
                problems.set(i, ShardVerifier.verify(path: shards[i]))
                done.increment()
            }
        }
        progressLine?.stop()
        var bad = 0
        for (path, found) in zip(shards, problems.values) {
            if found.isEmpty {
                if verbose { print("ok \(path)") }
            } else {
                bad += 1
                print("BAD \(path): " + found.map { e in
                    (e.frame.map { "frame \($0): " } ?? "") + e.problem
                }.joined(separator: "; "))
            }
        }
        printError("verified \(shards.count) shard\(shards.count == 1 ? "" : "s"): \(bad) bad")
        if bad > 0 { throw ExitCode(1) }
    }
}

/// Expands folders into their `*.zst` files (sorted); files are taken as they are.
func shardPaths(_ paths: [String]) throws -> [String] {
    var out: [String] = []
    for path in paths {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ValidationError("\(path): no such file or folder")
        }
        if isDirectory.boolValue {
            let names = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".zst") }.sorted()
            out += names.map { path + "/" + $0 }
        } else {
            out.append(path)
        }
    }
    return out
}

/// Whether `path` is a folder.
func isDirectory(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
}
