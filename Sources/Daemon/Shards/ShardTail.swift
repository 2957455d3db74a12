import TokenfeedSystem

/// The end of a version 3 shard, after its data frames: the index frame (frame table and document
/// ends in CRC-checked pages), the metadata frame and the footer. Written by ``ShardWriter`` and by
/// ``ShardUpgrade``.
enum ShardTail {
    /// The tail's bytes for data frames `frames` ending at `indexOffset`, and the metadata a reader
    /// will see.
    /// - Throws: `ShardError` naming `path` when the index is larger than a skippable frame can hold
    ///   (4 GiB: about 500 million documents in one shard).
    static func encode(path: String, tokenWidth: TokenWidth, tokensPerFrame: Int, vocabularySize: UInt32,
                       tokenCount: UInt64, frames: [FrameEntry], documentEnds: [UInt64], tokenizer: String?,
                       indexOffset: UInt64) throws(ShardError) -> (bytes: [UInt8], metadata: ShardMetadata) {
        let table = IndexPage.encode(frames: frames)
        let ends = IndexPage.encode(documentEnds: documentEnds)
        let indexPayload = 8 + table.count + ends.count
        guard let indexPayloadSize = UInt32(exactly: indexPayload) else {
            throw ShardError(path: path, "index of \(frames.count) frames and \(documentEnds.count) documents takes \(indexPayload) bytes, more than a skippable frame holds (4 GiB): split the shard")
        }
        var metadata = ShardMetadata(tokenWidth: tokenWidth, tokensPerFrame: tokensPerFrame, vocabularySize: vocabularySize,
                                     tokenCount: tokenCount, documentCount: documentEnds.count, frameCount: frames.count,
                                     largestFrame: frames.map(\.compressedSize).max() ?? 0, indexOffset: indexOffset,
                                     frameTableChecksum: IndexPage.sectionChecksum(table, .frameTable),
                                     documentEndsChecksum: IndexPage.sectionChecksum(ends, .documentEnds), tokenizer: tokenizer)
        let payload = metadata.encodedPayload()
        metadata.metadataChecksum = withBytes(of: payload) { $0.loadLE(payload.count - 4, as: UInt32.self) }
        let metadataOffset = indexOffset + UInt64(ShardFormat.skippableHeaderSize + indexPayload)
        var tail = LittleEndianWriter()
        tail.append(ShardFormat.skippableMagic)
        tail.append(indexPayloadSize)
        tail.append(bytes: ShardFormat.indexTag)
        tail.append(bytes: table)
        tail.append(bytes: ends)
        tail.append(ShardFormat.skippableMagic)
        tail.append(UInt32(payload.count))
        tail.append(bytes: payload)
        tail.append(ShardFormat.skippableMagic)
        tail.append(UInt32(ShardFormat.footerPayloadSize))
        tail.append(bytes: ShardFormat.footerTag)
        tail.append(metadataOffset)
        tail.append(UInt64(ShardFormat.skippableHeaderSize + payload.count))
        return (tail.bytes, metadata)
    }

    /// The header frame of a version 3 shard.
    static func header(tokenWidth: TokenWidth, tokensPerFrame: Int) -> [UInt8] {
        var header = LittleEndianWriter()
        header.append(ShardFormat.skippableMagic)
        header.append(UInt32(ShardFormat.headerPayloadSize))
        header.append(bytes: ShardFormat.headerTag)
        header.append(ShardFormat.version)
        header.append(tokenWidth.rawValue)
        header.append(UInt8(0))
        header.append(UInt32(tokensPerFrame))
        return header.bytes
    }
}
