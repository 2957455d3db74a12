import Synchronization

/// One shard's entry in a ``ShardTable``: the per-shard fields of its metadata and of its file
/// identity, packed into 64 bytes (widest first, no padding; `ShardMemoryLayoutTests`).
///
/// What is not here is either held once per dataset (token width, format version, tokenizer,
/// folder), kept beside it in the table (token count: ``ShardTable/tokenStarts``; file name), or
/// follows from the rest (frame count = ⌈token count / tokens per frame⌉, which decoding checks).
struct ShardRecord: Sendable, Hashable {
    /// Where the data frames end and the index frame starts.
    var indexOffset: UInt64
    var documentCount: UInt64
    /// The file's size, modification time (ns since the epoch) and inode when it was opened.
    var fileSize: UInt64
    var modificationTime: Int64
    var inode: UInt64
    var tokensPerFrame: UInt32
    var vocabularySize: UInt32
    var largestFrame: UInt32
    var frameTableChecksum: UInt32
    var documentEndsChecksum: UInt32
    var metadataChecksum: UInt32
}

/// The shards of one dataset, packed: a ``ShardRecord`` (64 bytes) and a token start (8 bytes) a
/// shard, the file names in one byte buffer with a `u32` end each, and the token width, format
/// version, tokenizer and folder once. About 85 bytes a shard for names like `00000.zst`, instead
/// of an object a shard (docs/BENCHMARKS.md, "Scale").
///
/// A collection of ``ShardReader`` values, each made when asked for (`table[i]`): the reader
/// carries the table and its index and rebuilds the shard's ``ShardMetadata`` from the record,
/// field for field as it was read. Immutable; copies share the storage.
public struct ShardTable: RandomAccessCollection, Sendable {
    final class Storage: Sendable {
        /// Process-unique number of the table: the high 32 bits of each shard's key in the
        /// descriptor and page caches (``ShardReader/id``).
        let id: UInt64
        /// The folder the file names are relative to (`folder/name`); nil when the names are whole paths.
        let folder: String?
        let records: [ShardRecord]
        /// `tokenStarts[i]` is the dataset-stream offset of shard i's first token; the last entry is the total.
        let tokenStarts: [UInt64]
        /// The file names' UTF-8 bytes, one after the other; name i ends at `nameEnds[i]`.
        let nameBytes: [UInt8]
        let nameEnds: [UInt32]
        let tokenWidth: TokenWidth
        let formatVersion: UInt16
        /// The tokenizer the shards name (nil when none does).
        let tokenizer: String?
        /// The shards that name no tokenizer in a dataset whose other shards name ``tokenizer``
        /// (empty in the usual dataset, where every shard names the same one or none does).
        let withoutTokenizer: Set<Int>
        /// Over all shards: the largest compressed frame, the most tokens a frame holds
        /// (`min(tokens_per_frame, token_count)`: a shard's frames hold no more, whatever is
        /// declared), and the frames in all.
        let largestFrame: UInt32
        let largestFrameTokens: UInt64
        let frameCount: Int

        private static let nextID = Atomic<UInt64>(0)

        init(folder: String?, records: [ShardRecord], tokenStarts: [UInt64], nameBytes: [UInt8], nameEnds: [UInt32],
             tokenWidth: TokenWidth, formatVersion: UInt16, tokenizer: String?, withoutTokenizer: Set<Int>) {
            let id = Self.nextID.add(1, ordering: .relaxed).newValue
            precondition(id < 1 << 32, "more than 2^32 shard tables in one process")
            self.id = id
            self.folder = folder
            self.records = records
            self.tokenStarts = tokenStarts
            self.nameBytes = nameBytes
            self.nameEnds = nameEnds
            self.tokenWidth = tokenWidth
            self.formatVersion = formatVersion
            self.tokenizer = tokenizer
            self.withoutTokenizer = withoutTokenizer
            var largest: UInt32 = 0, tokens: UInt64 = 0, frames = 0
            for (i, r) in records.enumerated() {
                let count = tokenStarts[i + 1] - tokenStarts[i]
                largest = Swift.max(largest, r.largestFrame)
                tokens = Swift.max(tokens, Swift.min(UInt64(r.tokensPerFrame), count))
                frames += ShardTable.frameCount(tokens: count, tokensPerFrame: UInt64(r.tokensPerFrame))
            }
            self.largestFrame = largest
            self.largestFrameTokens = tokens
            self.frameCount = frames
        }
    }

    /// One shard to put in a table: its file name (relative to the table's folder), its metadata
    /// and its file's identity when it was opened.
    public struct Entry: Sendable {
        public var name: String
        public var metadata: ShardMetadata
        public var identity: FileIdentity

        public init(name: String, metadata: ShardMetadata, identity: FileIdentity) {
            self.name = name
            self.metadata = metadata
            self.identity = identity
        }
    }

    let storage: Storage

    /// The table of `entries`, in that order, whose names are relative to `folder` (whole paths
    /// when `folder` is nil).
    /// - Throws: `ShardError` naming the shard when shards disagree on token width or format version,
    ///   name different tokenizers, or their token counts add up past 2^64.
    public init(folder: String?, entries: [Entry]) throws(ShardError) {
        guard let first = entries.first else {
            self.init(storage: Storage(folder: folder, records: [], tokenStarts: [0], nameBytes: [], nameEnds: [], tokenWidth: .uint32,
                                       formatVersion: ShardFormat.version, tokenizer: nil, withoutTokenizer: []))
            return
        }
        func path(_ entry: Entry) -> String { Self.path(folder: folder, name: entry.name) }
        guard UInt64(entries.count) <= UInt64(UInt32.max) else {
            throw ShardError(path: folder ?? path(first), "\(entries.count) shards in one dataset: at most \(UInt32.max) are supported")
        }
        let width = first.metadata.tokenWidth, version = first.metadata.formatVersion
        let named = entries.first { $0.metadata.tokenizer != nil }
        var records: [ShardRecord] = []
        var starts: [UInt64] = [0]
        var nameBytes: [UInt8] = []
        var nameEnds: [UInt32] = []
        var withoutTokenizer = Set<Int>()
        records.reserveCapacity(entries.count)
        starts.reserveCapacity(entries.count + 1)
        nameEnds.reserveCapacity(entries.count)
        nameBytes.reserveCapacity(entries.reduce(0) { $0 + $1.name.utf8.count })
        var total: UInt64 = 0
        for (i, entry) in entries.enumerated() {
            let m = entry.metadata
            guard m.tokenWidth == width else {
                throw ShardError(path: path(entry), "token width \(m.tokenWidth) differs from \(path(first)) (\(width))")
            }
            guard m.formatVersion == version else {
                throw ShardError(path: path(entry), field: "version", "format version \(m.formatVersion) differs from \(path(first)) (\(version))")
            }
            if let tokenizer = m.tokenizer, let named, tokenizer != named.metadata.tokenizer {
                throw ShardError(path: path(entry), field: "tokenizer",
                                 "tokenizer \"\(tokenizer)\" differs from \(path(named)) (\"\(named.metadata.tokenizerName)\"): a dataset holds one tokenizer's ids")
            }
            if named != nil, m.tokenizer == nil { withoutTokenizer.insert(i) }
            let (sum, overflow) = total.addingReportingOverflow(m.tokenCount)
            guard !overflow else {
                throw ShardError(path: path(entry), field: "token_count",
                                 "metadata: token_count: \(m.tokenCount) tokens bring the dataset past 2^64 tokens")
            }
            // Decoded metadata always satisfies these (``ShardMetadata/decode``); metadata built by
            // hand must too, or the record would not give it back.
            precondition(m.tokensPerFrame > 0 && m.tokensPerFrame <= Int(UInt32.max) && m.documentCount >= 0
                         && m.frameCount == Self.frameCount(tokens: m.tokenCount, tokensPerFrame: UInt64(m.tokensPerFrame)),
                         "metadata of \(path(entry)) does not fit a shard record")
            total = sum
            starts.append(total)
            nameBytes.append(contentsOf: entry.name.utf8)
            guard nameBytes.count <= Int(UInt32.max) else {
                throw ShardError(path: path(entry), "the dataset's file names take more than \(UInt32.max) bytes")
            }
            nameEnds.append(UInt32(nameBytes.count))
            records.append(ShardRecord(indexOffset: m.indexOffset, documentCount: UInt64(m.documentCount), fileSize: entry.identity.size,
                                       modificationTime: entry.identity.modificationTime, inode: entry.identity.inode,
                                       tokensPerFrame: UInt32(m.tokensPerFrame), vocabularySize: m.vocabularySize,
                                       largestFrame: m.largestFrame, frameTableChecksum: m.frameTableChecksum,
                                       documentEndsChecksum: m.documentEndsChecksum, metadataChecksum: m.metadataChecksum))
        }
        self.init(storage: Storage(folder: folder, records: records, tokenStarts: starts, nameBytes: nameBytes, nameEnds: nameEnds,
                                   tokenWidth: width, formatVersion: version, tokenizer: named?.metadata.tokenizer,
                                   withoutTokenizer: withoutTokenizer))
    }

    /// The table of one shard, `path` (`folder/name`, or a name alone), whose metadata was read before.
    init(path: String, metadata: ShardMetadata, identity: FileIdentity) {
        let (folder, name) = Self.split(path)
        // One shard's metadata always fits a table (no second shard to disagree with, one token count).
        self = (try? ShardTable(folder: folder, entries: [Entry(name: name, metadata: metadata, identity: identity)]))!
    }

    private init(storage: Storage) { self.storage = storage }

    public var startIndex: Int { 0 }
    public var endIndex: Int { storage.records.count }

    /// Shard `i`, made now from the table (no allocation).
    public subscript(i: Int) -> ShardReader { ShardReader(table: self, index: i) }

    /// `tokenStarts[i]` is the dataset-stream offset of shard i's first token; the last entry is the total.
    public var tokenStarts: [UInt64] { storage.tokenStarts }
    /// The documents of all shards.
    public var documentCount: UInt64 { storage.records.reduce(0) { $0 + $1.documentCount } }
    public var tokenWidth: TokenWidth { storage.tokenWidth }
    /// The tokenizer the shards name; nil when none names one.
    public var tokenizer: String? { storage.tokenizer }
    /// The largest compressed data frame of any shard, in bytes (sizes read buffers).
    public var largestFrame: Int { Int(storage.largestFrame) }
    /// The largest data frame of any shard decompressed, in bytes (`Int.max / 2` if that does not
    /// fit an `Int`): ``decodedBytes(tokens:width:)`` of the most tokens a frame holds.
    public var largestDecodedFrame: Int { Self.decodedBytes(tokens: storage.largestFrameTokens, width: storage.tokenWidth) }
    /// The data frames of all shards.
    public var frameCount: Int { storage.frameCount }

    /// The bytes of `tokens` tokens of `width`, or `Int.max / 2` when that does not fit an `Int`
    /// (so that sums of two such sizes do not overflow).
    public static func decodedBytes(tokens: UInt64, width: TokenWidth) -> Int {
        let (bytes, overflow) = tokens.multipliedReportingOverflow(by: UInt64(width.bytes))
        return overflow || bytes > UInt64(Int.max / 2) ? Int.max / 2 : Int(bytes)
    }

    /// The largest vocabulary a shard declares.
    public var vocabularySize: UInt32 { storage.records.lazy.map(\.vocabularySize).max() ?? 0 }

    /// Shard `i`'s key in the descriptor and page caches: the table's number, then `i`.
    func id(ofShard i: Int) -> UInt64 { storage.id << 32 | UInt64(i) }

    /// The file name of shard `i`.
    func name(_ i: Int) -> String {
        let start = i == 0 ? 0 : Int(storage.nameEnds[i - 1]), end = Int(storage.nameEnds[i])
        return String(decoding: storage.nameBytes[start ..< end], as: UTF8.self)
    }

    /// The file name of shard `i`: its name, or the last component of its path when the table has
    /// no folder.
    func fileName(_ i: Int) -> String {
        let name = name(i)
        guard storage.folder == nil, let slash = name.utf8.lastIndex(of: UInt8(ascii: "/")) else { return name }
        return String(name[name.index(after: slash)...])
    }

    /// The path of shard `i`, as it was opened: `folder/name`, or the name alone.
    func path(_ i: Int) -> String { Self.path(folder: storage.folder, name: name(i)) }

    /// The folder the names are relative to (nil: the names are whole paths).
    var folder: String? { storage.folder }

    static func path(folder: String?, name: String) -> String {
        folder.map { $0 + "/" + name } ?? name
    }

    /// `path` split at its last `/` into folder and file name (folder nil when there is no `/`;
    /// empty for `/name`).
    static func split(_ path: String) -> (folder: String?, name: String) {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return (nil, path) }
        return (String(path[..<slash]), String(path[path.index(after: slash)...]))
    }

    /// ⌈tokens / tokensPerFrame⌉, the frames a shard of `tokens` tokens has (`tokensPerFrame` > 0).
    static func frameCount(tokens: UInt64, tokensPerFrame: UInt64) -> Int {
        let (whole, rest) = tokens.quotientAndRemainder(dividingBy: tokensPerFrame)
        return Int(whole + (rest == 0 ? 0 : 1))
    }

    /// Shard `i`'s metadata, as it was read.
    func metadata(_ i: Int) -> ShardMetadata {
        let s = storage, r = s.records[i]
        let tokens = s.tokenStarts[i + 1] - s.tokenStarts[i]
        return ShardMetadata(tokenWidth: s.tokenWidth, tokensPerFrame: Int(r.tokensPerFrame), vocabularySize: r.vocabularySize,
                             tokenCount: tokens, documentCount: Int(r.documentCount),
                             frameCount: Self.frameCount(tokens: tokens, tokensPerFrame: UInt64(r.tokensPerFrame)),
                             largestFrame: r.largestFrame, indexOffset: r.indexOffset, frameTableChecksum: r.frameTableChecksum,
                             documentEndsChecksum: r.documentEndsChecksum, metadataChecksum: r.metadataChecksum,
                             tokenizer: s.withoutTokenizer.isEmpty || !s.withoutTokenizer.contains(i) ? s.tokenizer : nil,
                             formatVersion: s.formatVersion)
    }

    /// Shard `i`'s file identity when it was opened.
    func identity(_ i: Int) -> FileIdentity {
        let r = storage.records[i]
        return FileIdentity(size: r.fileSize, modificationTime: r.modificationTime, inode: r.inode)
    }
}
