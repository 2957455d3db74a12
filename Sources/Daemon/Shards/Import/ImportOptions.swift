import Synchronization

/// How imported shards are written.
public struct ImportOptions: Sendable {
    public var tokensPerFrame: Int = ShardFormat.defaultTokensPerFrame
    public var level: Int32 = 3
    /// Every id must be below it; nil records the largest id seen plus one.
    public var vocabularySize: UInt32?
    /// Bytes read from the source at a time (memory stays near this plus the writer's frame batch).
    public var readChunkBytes: Int = 16 << 20
    /// The tokenizer's name to keep in the shards; for datatrove, `.ds.metadata`'s is used when this
    /// is nil, and the two must agree when both are given. Nil and no `.ds.metadata`: unknown.
    public var tokenizer: String?
    /// datatrove: import a `.ds` whose `.ds.loss` mask exists, dropping the mask (shards do not keep
    /// loss masks); without it such an import is refused.
    public var ignoreLossMasks = false
    /// Frames compressed at once (nil: the machine's online CPUs).
    public var parallelism: Int?
    /// Counts what the import has read, for a progress line; nil counts nothing.
    public var progress: ImportProgress?

    public init(tokensPerFrame: Int = ShardFormat.defaultTokensPerFrame, level: Int32 = 3, vocabularySize: UInt32? = nil) {
        self.tokensPerFrame = tokensPerFrame
        self.level = level
        self.vocabularySize = vocabularySize
    }
}

/// What one import wrote.
public struct ImportSummary: Sendable {
    public var source: String
    public var shard: String
    public var metadata: ShardMetadata
    /// Source bytes of tokens (uncompressed).
    public var rawBytes: UInt64
    /// Documents of the source left out because they were empty.
    public var emptyDocumentsSkipped: Int = 0
}

/// What imports have read so far: source bytes of tokens and tokens, updated after every chunk
/// (counters only; any thread may read them at any time).
public final class ImportProgress: Sendable {
    private let bytes = Atomic<UInt64>(0)
    private let tokenCount = Atomic<UInt64>(0)

    public init() {}

    /// Source bytes of tokens read.
    public var bytesRead: UInt64 { bytes.load(ordering: .relaxed) }
    /// Tokens read.
    public var tokensRead: UInt64 { tokenCount.load(ordering: .relaxed) }

    func add(bytes count: Int, width: TokenWidth) {
        bytes.add(UInt64(count), ordering: .relaxed)
        tokenCount.add(UInt64(count / width.bytes), ordering: .relaxed)
    }
}
