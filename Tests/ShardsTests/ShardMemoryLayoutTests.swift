import Testing
import TestSupport
@testable import TokenfeedShards

/// What an open dataset keeps in memory per shard (issue 9: ≤ 100 resident bytes a shard): one
/// packed 64-byte record, a token start and the file name in the dataset's ``ShardTable``; the
/// metadata is rebuilt from them, field for field, when a reader is made.
@Suite struct ShardMemoryLayoutTests {
    @Test func shardRecordIsSixtyFourBytes() {
        // 5 × 8 (index offset, documents, size, modification time, inode) + 6 × 4 (tokens per frame,
        // vocabulary, largest frame, three CRCs), no padding.
        #expect(MemoryLayout<ShardRecord>.size == 64)
        #expect(MemoryLayout<ShardRecord>.stride == 64)
    }

    @Test func shardMetadataHasNoInnerPadding() {
        // 5 × 8 (counts, offset) + 16 (tokenizer) + 5 × 4 (vocabulary, largest frame, three CRCs) + 2 + 1.
        #expect(MemoryLayout<ShardMetadata>.size == 79)
        #expect(MemoryLayout<ShardMetadata>.stride == 80)
    }

    /// A table gives back each shard's metadata, identity, name and path as they were put in, and
    /// the shards of one table have distinct cache keys.
    @Test func tableGivesBackWhatWasPutIn() throws {
        let folder = TemporaryDirectory("tflayout")
        let corpus = try writeMixedTokenizerShards(in: folder.path)
        let readers = try corpus.map { try ShardReader(path: $0) }
        let dataset = try DatasetFolder(path: folder.path, shards: readers)
        #expect(dataset.shards.count == readers.count)
        for (i, reader) in readers.enumerated() {
            let shard = dataset.shards[i]
            #expect(shard.metadata == reader.metadata)
            #expect(shard.identity == reader.identity)
            #expect(shard.path == reader.path)
            #expect(shard.fileName == reader.fileName)
            #expect(try shard.allDocumentEnds() == reader.allDocumentEnds())
        }
        #expect(Set(dataset.shards.map(\.id)).count == readers.count)
        #expect(dataset.tokenizer == "tok")
        #expect(dataset.shards[1].metadata.tokenizer == nil)
    }

    /// Three shards in `folder`: the first and last name tokenizer `tok`, the middle one none;
    /// different frame sizes and vocabularies. Returns their paths.
    private func writeMixedTokenizerShards(in folder: String) throws -> [String] {
        var paths: [String] = []
        for (i, tokenizer) in ["tok", nil, "tok"].enumerated() {
            let path = folder + "/s\(i).zst"
            let writer = try ShardWriter(path: path, tokenWidth: .uint32, vocabularySize: UInt32(1_000 + i),
                                         tokensPerFrame: 7 + i, tokenizer: tokenizer)
            for d in 0 ..< 20 + i {
                try writer.write(tokens: (0 ... d % 5).map { UInt32($0 + d) })
                try writer.endDocument()
            }
            try writer.finish()
            paths.append(path)
        }
        return paths
    }
}
