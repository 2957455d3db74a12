import ArgumentParser
import Dispatch
import Foundation
import TokenfeedShards

/// `tokenfeed shard verify PATH...`
struct ShardVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check shards completely: structure, metadata and frame checksums, decompression.",
        discussion: "Prints one line per bad shard (file, frame, problem) and exits non-zero if any is bad.")

    @Argument(help: "Shard files or folders of shards.")
    var paths: [String]

    @Flag(help: "Also print a line for every good shard.")
    var verbose = false

    func run() throws {
        let shards = try shardPaths(paths)
        let problems = ParallelResults<[ShardError]>(count: shards.count)
        DispatchQueue.concurrentPerform(iterations: shards.count) { i in
            problems.set(i, ShardVerifier.verify(path: shards[i]))
        }
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
