/// What the daemon does with shard data that fails its checksums (`--on-corrupt`,
/// docs/OPERATIONS.md "Corrupt data").
public enum CorruptDataPolicy: String, Sendable, Hashable, CaseIterable {
    /// A corrupt shard found at startup stops the daemon (exit 1, naming file and frame); one found
    /// while serving ends the sessions that need it with `data_error`.
    case fail
    /// Every shard is verified at startup and the corrupt ones are dropped from their dataset, the
    /// same way on every node (the set depends on the data only); the stream's fingerprint and every
    /// cursor carry the quarantine digest. Corruption found later still ends sessions with `data_error`.
    case quarantine
}

/// How much of every shard the daemon checks before it listens (`--verify-shards`).
public enum ShardVerificationMode: String, Sendable, Hashable, CaseIterable {
    /// Structure and the metadata checksum only (three reads a shard); frames are checked when they
    /// are decompressed for serving.
    case none
    /// Additionally every frame of every shard: its CRC-32, that it decompresses with zstd's content
    /// checksum to its token count, and that every id is below the vocabulary (``ShardVerifier``).
    case startup
}
