import Testing
@testable import TokenfeedShards

/// What an open shard keeps in memory per shard (issue 9: resident bytes a shard): the metadata is
/// stored without inner padding, and the reader's flag sits in the metadata's tail padding.
@Suite struct ShardMemoryLayoutTests {
    @Test func shardMetadataHasNoInnerPadding() {
        // 5 × 8 (counts, offset) + 16 (tokenizer) + 5 × 4 (vocabulary, largest frame, three CRCs) + 2 + 1.
        #expect(MemoryLayout<ShardMetadata>.size == 79)
        #expect(MemoryLayout<ShardMetadata>.stride == 80)
    }
}
