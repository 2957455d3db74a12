/// What a curriculum says its datasets' shards hold — a nanotron stage's `token_size_in_bytes`,
/// `tokenizer_name` and `vocab_size` — checked against the shards when the stream is opened
/// (`GlobalStream`), so a config written for other data is refused instead of served.
public struct DeclaredShardFormat: Sendable, Hashable {
    /// Bytes per token (2 or 4).
    public var tokenBytes: Declared<Int>?
    /// The tokenizer's name.
    public var tokenizer: Declared<String>?
    /// The model's vocabulary size: no shard may declare more ids.
    public var vocabularySize: Declared<UInt64>?

    public init(tokenBytes: Declared<Int>? = nil, tokenizer: Declared<String>? = nil, vocabularySize: Declared<UInt64>? = nil) {
        self.tokenBytes = tokenBytes
        self.tokenizer = tokenizer
        self.vocabularySize = vocabularySize
    }
}

/// A value a curriculum file declares, with where it is written.
public struct Declared<Value: Sendable & Hashable>: Sendable, Hashable {
    public var value: Value
    public var location: SourceLocation

    public init(_ value: Value, at location: SourceLocation) {
        self.value = value
        self.location = location
    }
}
