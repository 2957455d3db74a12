import Dispatch
import Foundation
import SystemPackage
import TokenfeedSystem

/// A dataset: a folder of shards (`*.zst`, in file-name order), like a nanotron dataset folder of
/// `.ds` files. Opening it reads every shard's metadata (in parallel) and nothing else.
public final class DatasetFolder: Sendable {
    public let path: String
    /// The shards in file-name order: the dataset's epoch-0 order.
    public let shards: [ShardReader]
    /// `tokenStarts[i]` is the dataset-stream offset of shard i's first token; the last entry is the total.
    public let tokenStarts: [UInt64]
    public let tokenWidth: TokenWidth
    public let vocabularySize: UInt32
    /// The tokenizer the shards name; nil when none names one (version 1 shards, imports that did
    /// not say). Shards naming different tokenizers are refused at open.
    public let tokenizer: String?

    public var tokenCount: UInt64 { tokenStarts.last ?? 0 }
    public var documentCount: UInt64 { shards.reduce(0) { $0 + UInt64($1.metadata.documentCount) } }

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
                for entry in manifest.entries { known[entry.name] = entry }
            } else {
                warnings.append("dataset \(path): no \(DatasetManifest.fileName); read the metadata of its \(paths.count) shards instead; \(fix)")
            }
        } catch {
            warnings.append("dataset \(path): ignored \(error); read the metadata of its \(paths.count) shards instead; \(fix)")
        }
        let table = known
        // One folder string for all the shards (``join(_:_:)`` spells their paths `folder/name`).
        let shared = path.hasSuffix("/") ? String(path.dropLast()) : path
        // The tokenizer name the first listed shard records: shards naming the same one keep this
        // string, not a copy each (a name such as `HuggingFaceTB/SmolLM3-3B` is stored on the heap).
        let commonTokenizer = names.first.flatMap { table[$0] }.flatMap { entry in
            try? withBytes(of: entry.payload, { (b) throws(ShardError) in
                try ShardMetadata.decode(payload: b, path: paths[0], metadataOffset: entry.metadataOffset) }).tokenizer
        }
        // One directory descriptor for the stats: each resolves the file name only.
        let directory = try? FileDescriptor.open(FilePath(path), .readOnly, options: [.directory, .closeOnExec])
        defer { try? directory?.close() }
        let results = ParallelResults<Result<ShardReader, ShardError>>(count: paths.count)
        let stale = ParallelResults<Bool>(count: paths.count)
        DispatchQueue.concurrentPerform(iterations: paths.count) { i in
            let name = names[i]
            let found = directory.map { FileIdentity.of(name: name, inDirectory: $0) } ?? FileIdentity.of(path: paths[i])
            if let entry = table[name], case .success(let identity) = found, identity == entry.identity,
               var metadata = try? withBytes(of: entry.payload, { (b) throws(ShardError) in
                   try ShardMetadata.decode(payload: b, path: paths[i], metadataOffset: entry.metadataOffset) }) {
                if metadata.tokenizer == commonTokenizer { metadata.tokenizer = commonTokenizer }    // one string a dataset
                results.set(i, .success(ShardReader(folder: shared, fileName: name, metadata: metadata, identity: entry.identity)))
                stale.set(i, false)
            } else {
                results.set(i, Result { () throws(ShardError) in try ShardReader(path: paths[i]) })
                stale.set(i, !table.isEmpty)
            }
        }
        var shards: [ShardReader] = []
        for result in results.values { shards.append(try result.get()) }
        let changed = zip(names, stale.values).filter(\.1).map(\.0)
        let removed = Set(known.keys).subtracting(names)
        if !changed.isEmpty || !removed.isEmpty {
            let listed = (changed + removed.sorted()).prefix(3).joined(separator: ", ")
            warnings.append("dataset \(path): \(DatasetManifest.fileName) is stale (\(changed.count) shards new or changed, \(removed.count) gone: \(listed)\(changed.count + removed.count > 3 ? ", …" : "")); read their metadata instead; \(fix)")
        }
        for warning in warnings {
            if let report { report(warning) } else { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        }
        return try DatasetFolder(path: path, shards: shards, warnings: warnings)
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
        let names: [String]
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ShardError(path: path, "dataset folder does not exist")
        }
        let all: [String]
        do { all = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
            throw ShardError(path: path, "cannot list the dataset folder: \(error)")
        }
        names = all.filter { $0.hasSuffix("." + ShardFormat.fileExtension) }.sorted()
        guard !names.isEmpty else {
            throw ShardError(path: path, "dataset folder holds no shard (*.zst)" + importHint(path: path, files: all))
        }
        return names
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

    /// A dataset made of already open shards, in the given order.
    public init(path: String, shards: [ShardReader], warnings: [String] = []) throws(ShardError) {
        precondition(!shards.isEmpty)
        let width = shards[0].metadata.tokenWidth
        for shard in shards where shard.metadata.tokenWidth != width {
            throw ShardError(path: shard.path, "token width \(shard.metadata.tokenWidth) differs from \(shards[0].path) (\(width))")
        }
        var starts: [UInt64] = [0]
        var named: ShardReader?
        for shard in shards {
            guard let tokenizer = shard.metadata.tokenizer else { continue }
            if let first = named, first.metadata.tokenizer != tokenizer {
                throw ShardError(path: shard.path, field: "tokenizer",
                                 "tokenizer \"\(tokenizer)\" differs from \(first.path) (\"\(first.metadata.tokenizerName)\"): a dataset holds one tokenizer's ids")
            }
            named = named ?? shard
        }
        self.tokenizer = named?.metadata.tokenizer
        var total: UInt64 = 0
        for shard in shards {
            let (sum, overflow) = total.addingReportingOverflow(shard.metadata.tokenCount)
            guard !overflow else {
                throw ShardError(path: shard.path, field: "token_count",
                                 "metadata: token_count: \(shard.metadata.tokenCount) tokens bring the dataset past 2^64 tokens")
            }
            total = sum
            starts.append(total)
        }
        self.path = path
        self.warnings = warnings
        self.shards = shards
        self.tokenStarts = starts
        self.tokenWidth = width
        self.vocabularySize = shards.map(\.metadata.vocabularySize).max() ?? 0
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
