import ArgumentParser
import Dispatch
import TokenfeedShards

/// `tokenfeed shard upgrade DIR...`
struct ShardUpgradeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upgrade",
        abstract: "Rewrite format version 1 and 2 shards as version 3, in place, and write each folder's manifest.",
        discussion: """
            Each old shard is rewritten through NAME.zst.partial and renamed over itself: the data frames are \
            copied byte for byte (no recompression), only the header, index, metadata and footer are new. \
            Version 3 shards are left alone. Then DIR/tokenfeed.manifest is written (as `shard index`). \
            Stop the daemons serving DIR first: a shard replaced under a running daemon is refused by it.
            """)

    @Argument(help: "Dataset folders (or single shard files).")
    var paths: [String]

    func run() throws {
        var failures = 0
        for path in paths {
            let shards = try shardPaths([path])
            let outcomes = ParallelResults<Result<ShardUpgrade.Outcome, ShardError>>(count: shards.count)
            DispatchQueue.concurrentPerform(iterations: shards.count) { i in
                outcomes.set(i, Result { () throws(ShardError) in try ShardUpgrade.upgrade(path: shards[i]) })
            }
            var upgraded = 0, current = 0
            for result in outcomes.values {
                switch result {
                case .success(.upgraded): upgraded += 1
                case .success(.alreadyCurrent): current += 1
                case .failure(let error):
                    failures += 1
                    printError("error: \(error)")
                }
            }
            print("\(path): \(upgraded) shard\(upgraded == 1 ? "" : "s") upgraded to version \(ShardFormat.version), \(current) already version \(ShardFormat.version)")
            if failures == 0, isDirectory(path) {
                do { try writeManifest(folder: path) } catch {
                    failures += 1
                    printError("error: \(error)")
                }
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }
}

/// `tokenfeed shard index DIR...`
struct ShardIndexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "Write DIR/tokenfeed.manifest from the folder's shards, so that processes open the dataset without reading them.",
        discussion: """
            Reads each shard's header, footer and metadata (three small reads) and records its size, \
            modification time, inode and metadata. Run it after adding, replacing or removing shards: \
            a process finding the manifest stale reads the changed shards' metadata itself and warns.
            """)

    @Argument(help: "Dataset folders.")
    var folders: [String]

    func run() throws {
        var failures = 0
        for folder in folders {
            do { try writeManifest(folder: folder) } catch {
                failures += 1
                printError("error: \(error)")
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }
}

/// Writes `folder`'s manifest from its shards and says so.
/// - Throws: `ShardError` naming the shard or file that cannot be read or written.
func writeManifest(folder: String) throws(ShardError) {
    let manifest = try DatasetManifest.build(shardPaths: try DatasetFolder.shardPaths(in: folder))
    try manifest.write(folder: folder)
    print("wrote \(folder.hasSuffix("/") ? folder : folder + "/")\(DatasetManifest.fileName) (\(manifest.entries.count) shard\(manifest.entries.count == 1 ? "" : "s"))")
}
