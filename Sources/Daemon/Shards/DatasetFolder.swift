import Dispatch
import Foundation
import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A dataset: a folder of shards (`*.zst`, in file-name order), like a nanotron dataset folder of
/// `.ds` files. Opening it reads every shard's metadata (in parallel) and nothing else.
public final class DatasetFolder: Sendable {
    public let path: String
    /// The shards in file-name order: the dataset's epoch-0 order. Packed, one record a shard;
    /// `shards[i]` makes shard i's ``ShardReader``.
    public let shards: ShardTable
    /// `tokenStarts[i]` is the dataset-stream offset of shard i's first token; the last entry is the total.
    public let tokenStarts: [UInt64]
    public let tokenWidth: TokenWidth
    public let vocabularySize: UInt32
    /// The tokenizer the shards name; nil when none names one (version 1 shards, imports that did
    /// not say). Shards naming different tokenizers are refused at open.
    public let tokenizer: String?

    public var tokenCount: UInt64 { tokenStarts.last ?? 0 }
    /// The tokens of shard `s` (from ``tokenStarts``: no reader made).
    public func tokenCount(ofShard s: Int) -> UInt64 { tokenStarts[s + 1] - tokenStarts[s] }
    public var documentCount: UInt64 { shards.documentCount }

    /// The folder's manifest, from the open shards' metadata (for `tokenfeed shard index`).
    /// - Throws: `ShardError` when a shard's metadata frame cannot be read again.
    public func manifest() throws(ShardError) -> DatasetManifest {
        try DatasetManifest.build(shardPaths: shards.map(\.path))
    }

    /// Warnings from opening (a missing, stale or unreadable manifest), already reported.
    public let warnings: [String]

    /// Opens every `*.zst` file directly inside `path`: from the folder's manifest
    /// (``DatasetManifest``) for each shard whose size, modification time and inode still match
    /// it — reading no shard — and by reading the header, footer and metadata of the others. A
    /// missing, corrupt or stale manifest is reported through `report` (default: standard error),
    /// naming the dataset and the command that rewrites it; it is never written from here.
    /// - Throws: `ShardError` when the folder is missing, holds no shard, a shard cannot be opened,
    ///   shards disagree on token width or name different tokenizers, or their token counts add up past 2^64.
    public static func open(path: String, report: (@Sendable (String) -> Void)? = nil) throws(ShardError) -> DatasetFolder {
        let names = try shardNames(in: path)
        let paths = names.map { join(path, $0) }
        var warnings: [String] = []
        var known: [String: DatasetManifest.Entry] = [:]
        let fix = "run `tokenfeed shard index \(path)`"
        do {
            if let manifest = try DatasetManifest.read(folder: path) {
                known.reserveCapacity(manifest.entries.count)
                for entry in manifest.entries { known[entry.name] = entry }
            } else {
                warnings.append("dataset \(path): no \(DatasetManifest.fileName); read the metadata of its \(paths.count) shards instead; \(fix)")
            }
        } catch {
            warnings.append("dataset \(path): ignored \(error); read the metadata of its \(paths.count) shards instead; \(fix)")
        }
        let table = known
        // One folder string for the table: shard i's path is `folder/names[i]`.
        let shared = path.hasSuffix("/") ? String(path.dropLast()) : path
        // One directory descriptor for the stats: each resolves the file name only.
        let directory = try? FileDescriptor.open(FilePath(path), .readOnly, options: [.directory, .closeOnExec])
        defer { try? directory?.close() }
        let results = ParallelResults<Result<ShardTable.Entry, ShardError>>(count: paths.count)
        let stale = ParallelResults<Bool>(count: paths.count)
        DispatchQueue.concurrentPerform(iterations: paths.count) { i in
            let name = names[i]
            let found = directory.map { FileIdentity.of(name: name, inDirectory: $0) } ?? FileIdentity.of(path: paths[i])
            if let entry = table[name], case .success(let identity) = found, identity == entry.identity,
               let metadata = try? withBytes(of: entry.payload, { (b) throws(ShardError) in
                   try ShardMetadata.decode(payload: b, path: paths[i], metadataOffset: entry.metadataOffset) }) {
                results.set(i, .success(ShardTable.Entry(name: name, metadata: metadata, identity: entry.identity)))
                stale.set(i, false)
            } else {
                results.set(i, Result { () throws(ShardError) in
                    let (_, metadata, identity) = try ShardReader.readMetadata(path: paths[i])
                    return ShardTable.Entry(name: name, metadata: metadata, identity: identity)
                })
                stale.set(i, !table.isEmpty)
            }
        }
        var entries: [ShardTable.Entry] = []
        entries.reserveCapacity(paths.count)
        for result in results.values { entries.append(try result.get()) }
        let changed = zip(names, stale.values).filter(\.1).map(\.0)
        let removed = Set(known.keys).subtracting(names)
        if !changed.isEmpty || !removed.isEmpty {
            let listed = (changed + removed.sorted()).prefix(3).joined(separator: ", ")
            warnings.append("dataset \(path): \(DatasetManifest.fileName) is stale (\(changed.count) shards new or changed, \(removed.count) gone: \(listed)\(changed.count + removed.count > 3 ? ", …" : "")); read their metadata instead; \(fix)")
        }
        for warning in warnings {
            if let report { report(warning) } else { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        }
        return DatasetFolder(path: path, table: try ShardTable(folder: shared, entries: entries), warnings: warnings)
    }

    /// The paths of the `*.zst` files directly inside the dataset folder `path`, in file-name order
    /// (the order ``open(path:)`` opens them in), without opening any.
    /// - Throws: `ShardError` when the folder is missing, cannot be listed or holds no shard.
    public static func shardPaths(in path: String) throws(ShardError) -> [String] {
        try shardNames(in: path).map { join(path, $0) }
    }

    /// The file names of the `*.zst` files directly inside the dataset folder `path`, sorted.
    /// - Throws: `ShardError` when the folder is missing, cannot be listed or holds no shard.
    static func shardNames(in path: String) throws(ShardError) -> [String] {
        guard let directory = opendir(path) else {
            let error = Errno(rawValue: errno)
            if error == .noSuchFileOrDirectory || error == .notDirectory { throw ShardError(path: path, "dataset folder does not exist") }
            throw ShardError(path: path, "cannot list the dataset folder: \(error)")
        }
        defer { closedir(directory) }
        // readdir, not FileManager: a String only for the names that end in `.zst`.
        let suffix = Array(("." + ShardFormat.fileExtension).utf8)
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(directory) else { break }
            let name: String? = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                let length = raw.firstIndex(of: 0) ?? raw.count
                guard length >= suffix.count, raw[(length - suffix.count) ..< length].elementsEqual(suffix) else { return nil }
                return String(decoding: UnsafeRawBufferPointer(rebasing: raw[..<length]), as: UTF8.self)
            }
            if let name { names.append(name) }
        }
        guard errno == 0 else { throw ShardError(path: path, "cannot list the dataset folder: \(Errno(rawValue: errno))") }
        guard !names.isEmpty else {
            let all = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            throw ShardError(path: path, "dataset folder holds no shard (*.zst)" + importHint(path: path, files: all))
        }
        return names.sorted()
    }

    /// `folder/name`.
    private static func join(_ folder: String, _ name: String) -> String {
        folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }

    /// For a folder without shards: what to run when it holds tokenized files tokenfeed can import.
    static func importHint(path: String, files: [String]) -> String {
        let datatrove = files.filter { $0.hasSuffix(".ds") }.count
        let megatron = files.filter { $0.hasSuffix(".bin") && files.contains(String($0.dropLast(4)) + ".idx") }.count
        if datatrove > 0 {
            return "; it holds \(datatrove) datatrove file(s) (*.ds): import them with `tokenfeed shard import --from datatrove \(path) --out SHARD_FOLDER`"
        }
        if megatron > 0 {
            return "; it holds \(megatron) Megatron dataset(s) (*.bin + *.idx): import them with `tokenfeed shard import --from megatron \(path) --out SHARD_FOLDER`"
        }
        return ""
    }

    /// A dataset made of already open shards, in the given order (a table of their own: their
    /// folder when they share one, their whole paths otherwise).
    /// - Throws: `ShardError` when shards disagree on token width or name different tokenizers, or
    ///   their token counts add up past 2^64.
    public convenience init(path: String, shards: [ShardReader], warnings: [String] = []) throws(ShardError) {
        precondition(!shards.isEmpty)
        let folder = shards[0].table.folder
        let shared = shards.allSatisfy { $0.table.folder == folder }
        let entries = shards.map { ShardTable.Entry(name: shared ? $0.fileName : $0.path, metadata: $0.metadata, identity: $0.identity) }
        self.init(path: path, table: try ShardTable(folder: shared ? folder : nil, entries: entries), warnings: warnings)
    }

    /// A dataset of the shards in `table` (not empty).
    init(path: String, table: ShardTable, warnings: [String]) {
        precondition(!table.isEmpty)
        self.path = path
        self.warnings = warnings
        self.shards = table
        self.tokenStarts = table.tokenStarts
        self.tokenWidth = table.tokenWidth
        self.tokenizer = table.tokenizer
        self.vocabularySize = table.vocabularySize
    }

    /// The shard holding dataset-stream token `t` (epoch-0 order), by binary search.
    public func shard(containingToken t: UInt64) -> Int {
        var lo = 0, hi = shards.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if tokenStarts[mid + 1] <= t { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

/// Results written by parallel iterations (`DispatchQueue.concurrentPerform`), one index each,
/// read after all iterations have finished.
///
/// `@unchecked Sendable`: iteration `i` writes only element `i`, through a pointer to storage
/// allocated once (no shared `Array` is mutated, so there is no exclusivity conflict), and
/// `concurrentPerform` returns only after every iteration, which orders the writes before `values`.
public final class ParallelResults<T>: @unchecked Sendable {
    private let slots: UnsafeMutablePointer<T?>
    private let count: Int

    public init(count: Int) {
        self.count = count
        slots = .allocate(capacity: max(count, 1))
        slots.initialize(repeating: nil, count: count)
    }

    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }

    /// Stores iteration `i`'s result.
    public func set(_ i: Int, _ value: T) {
        precondition(i >= 0 && i < count)
        slots[i] = value
    }

    /// All results, in index order. Every index must have been set.
    public var values: [T] { (0 ..< count).map { slots[$0]! } }
}
