import TokenfeedShards

/// What a shard's bestfit row count depends on — its document lengths — as a fingerprint that
/// costs nothing to take: the persisted row counts (``BestFitRowStore``) are looked up by it, so a
/// count is reused only for a shard with the same content.
///
/// Every field comes from the shard's (version 3) metadata, held in memory — no read:
/// - `metadataChecksum`: the CRC-32 the metadata payload ends with (docs/SHARDS.md), which covers
///   the token and document counts and the two section checksums below;
/// - `frameTableChecksum` and `documentSampleChecksum`: the CRC-32s the metadata records of the
///   index's frame-table and document-end sections (every page, so every document end). The field
///   names are those of the row-cache file, whose layout is unchanged: a cache written for version 2
///   shards (where these held a frame-table CRC and a sample of ends) simply matches no version 3
///   shard, and its shards are counted again.
struct BestFitShardKey: Hashable, Sendable {
    var tokenCount: UInt64
    var documentCount: UInt64
    var metadataChecksum: UInt32
    var frameTableChecksum: UInt32
    var documentSampleChecksum: UInt32

    /// The key of an open shard. Never throws (kept throwing for the callers' error paths).
    static func of(_ shard: ShardReader) throws(EngineError) -> BestFitShardKey {
        let metadata = shard.metadata
        return BestFitShardKey(tokenCount: metadata.tokenCount, documentCount: UInt64(metadata.documentCount),
                               metadataChecksum: metadata.metadataChecksum, frameTableChecksum: metadata.frameTableChecksum,
                               documentSampleChecksum: metadata.documentEndsChecksum)
    }
}
