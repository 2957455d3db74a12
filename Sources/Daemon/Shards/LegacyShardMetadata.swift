import TokenfeedSystem

/// The whole metadata of a format version 1 or 2 shard, where the frame table and the document
/// lengths (LEB128 varints) live inside the metadata frame. Read only by `tokenfeed shard upgrade`,
/// which rewrites such shards as version 3 (``ShardUpgrade``); the reader refuses them.
struct LegacyShardMetadata: Sendable, Hashable {
    var tokenWidth: TokenWidth
    var tokensPerFrame: Int
    var vocabularySize: UInt32
    var tokenCount: UInt64
    var frames: [FrameEntry]
    /// Cumulative document end offsets, in tokens; the last equals `tokenCount`.
    var documentEnds: [UInt64]
    var tokenizer: String?
    var formatVersion: UInt16

    /// The metadata frame's payload (version ``formatVersion``): tag, fixed fields, frame table,
    /// document lengths, the tagged fields (version 2), CRC-32.
    /// For tests that make old shards to upgrade; nothing else writes version 1 or 2.
    func encodedPayload() -> [UInt8] {
        var w = ShardMetadata.fixedPrefix(version: formatVersion, width: tokenWidth, tokensPerFrame: tokensPerFrame,
                                          vocabularySize: vocabularySize, frameCount: frames.count, tokenCount: tokenCount,
                                          documentCount: documentEnds.count)
        for f in frames {
            w.append(f.offset)
            w.append(f.compressedSize)
            w.append(f.checksum)
        }
        var lengths = LittleEndianWriter()
        var previous: UInt64 = 0
        for end in documentEnds {
            lengths.appendVarint(end - previous)
            previous = end
        }
        w.append(UInt64(lengths.bytes.count))
        w.append(bytes: lengths.bytes)
        if formatVersion >= 2 { ShardMetadata.appendTaggedFields(&w, tokenizer: tokenizer) }
        w.append(crc32(w.bytes))
        return w.bytes
    }

    /// Parses and checks a metadata payload. Every field is checked against the file (`dataEnd`:
    /// where the data frames must end, i.e. the metadata frame's offset) and against the other
    /// fields before it is used in any arithmetic, and all arithmetic on file values is checked.
    /// - Throws: `ShardError` naming `path`, the field (``ShardError/field``, as named in
    ///   docs/SHARDS.md), the frame for frame-table entries, and what the value should be.
    static func decode(payload: UnsafeRawBufferPointer, path: String, dataEnd: UInt64) throws(ShardError) -> LegacyShardMetadata {
        func fail(_ field: String, frame: Int? = nil, _ message: String) -> ShardError {
            ShardError(path: path, frame: frame, field: field, "metadata: \(field): \(message)")
        }
        func failField(_ field: String, _ frame: Int?, _ message: String) -> ShardError { fail(field, frame: frame, message) }
        let fixedAndCRC = ShardFormat.legacyMetadataFixedSize + 8 + 4        // fixed fields, L, CRC-32
        guard payload.count >= fixedAndCRC else {
            throw fail("payload_size", "payload of \(payload.count) bytes is shorter than the fixed fields (at least \(fixedAndCRC))")
        }
        let stored = payload.loadLE(payload.count - 4, as: UInt32.self)
        let computed = crc32(UnsafeRawBufferPointer(rebasing: payload[..<(payload.count - 4)]))
        guard stored == computed else {
            throw fail("crc32", String(format32: "checksum mismatch (stored", stored, ", computed", computed))
        }
        // The fixed fields are all present (checked above), so these reads cannot fail.
        var r = LittleEndianReader(UnsafeRawBufferPointer(rebasing: payload[..<(payload.count - 4)]))
        guard r.readBytes(8) == ShardFormat.metadataTag else { throw fail("tag", "tag is not TFMETA") }
        let version = r.read(UInt16.self) ?? 0
        guard ShardFormat.upgradableVersions.contains(version) else {
            throw fail("version", "format version \(version) is not a version 1 or 2 shard")
        }
        let widthByte = r.read(UInt8.self) ?? 0
        guard let width = TokenWidth(rawValue: widthByte) else {
            throw fail("token_width", "token width \(widthByte) must be 2 or 4 bytes")
        }
        _ = r.read(UInt8.self)                       // flags, none defined in version 1
        let rawTokensPerFrame = r.read(UInt32.self) ?? 0
        let vocabularySize = r.read(UInt32.self) ?? 0
        let rawFrameCount = r.read(UInt32.self) ?? 0
        let tokenCount = r.read(UInt64.self) ?? 0
        let documentCount = r.read(UInt64.self) ?? 0

        guard rawTokensPerFrame > 0, rawTokensPerFrame <= UInt32(ShardFormat.maxTokensPerFrame) else {
            throw fail("tokens_per_frame", "\(rawTokensPerFrame) is out of range 1...\(ShardFormat.maxTokensPerFrame)")
        }
        let tokensPerFrame = Int(rawTokensPerFrame)
        // The frame table must fit in the payload and its frames in the file's data section
        // (every zstd frame is at least one byte), before the count is used for anything.
        let frameCount = Int(rawFrameCount)
        let tableBytes = frameCount * ShardFormat.frameEntrySize           // < 2^36: no overflow
        guard tableBytes <= r.remaining - 8 else {
            throw fail("frame_count", "\(frameCount) frames need a \(tableBytes)-byte frame table, the payload has \(r.remaining - 8) bytes for it")
        }
        let dataBytes = dataEnd >= UInt64(ShardFormat.headerFrameSize) ? dataEnd - UInt64(ShardFormat.headerFrameSize) : 0
        try ShardMetadata.checkCounts(frameCount: frameCount, dataBytes: dataBytes, tokenCount: tokenCount,
                                      tokensPerFrame: tokensPerFrame, documentCount: documentCount) { fail($0, $1) }
        var frames: [FrameEntry] = []
        frames.reserveCapacity(frameCount)
        var expectedOffset = UInt64(ShardFormat.headerFrameSize)
        for k in 0 ..< frameCount {
            let entry = FrameEntry(offset: r.read(UInt64.self) ?? 0, compressedSize: r.read(UInt32.self) ?? 0,
                                   checksum: r.read(UInt32.self) ?? 0)
            guard entry.offset == expectedOffset else {
                throw fail("frame_table.offset", frame: k, "frame starts at \(entry.offset), expected \(expectedOffset) (right after the previous frame)")
            }
            let (next, overflow) = expectedOffset.addingReportingOverflow(UInt64(entry.compressedSize))
            guard entry.compressedSize > 0, !overflow, next <= dataEnd else {
                throw fail("frame_table.compressed_size", frame: k, "frame of \(entry.compressedSize) bytes at \(entry.offset) must be non-empty and end by \(dataEnd), where the metadata starts")
            }
            expectedOffset = next
            frames.append(entry)
        }
        guard expectedOffset == dataEnd else {
            throw fail("frame_table", "data frames end at \(expectedOffset) but the metadata starts at \(dataEnd)")
        }
        let lengthBytes = r.read(UInt64.self) ?? 0
        // Version 1: the lengths are the rest of the payload; version 2: the tagged fields follow
        // them (at least their own 8-byte size).
        let room = version == 1 ? r.remaining : r.remaining - 8
        guard version == 1 ? lengthBytes == UInt64(room) : (room >= 0 && lengthBytes <= UInt64(room)) else {
            throw fail("document_lengths_size", "says \(lengthBytes) bytes, the payload has \(max(room, 0)) bytes for the section")
        }
        let lengthsEnd = r.offset + Int(lengthBytes)
        guard documentCount <= lengthBytes else {
            throw fail("document_count", "\(documentCount) documents need at least \(documentCount) bytes of lengths, the section is \(r.remaining) bytes")
        }
        var ends: [UInt64] = []
        ends.reserveCapacity(Int(documentCount))
        var end: UInt64 = 0
        for d in 0 ..< Int(documentCount) {
            guard let length = r.readVarint() else {
                throw fail("document_lengths", "document \(d): length is truncated or longer than 10 bytes")
            }
            guard length > 0 else { throw fail("document_lengths", "document \(d): length 0 (every document holds at least one token)") }
            let (sum, overflow) = end.addingReportingOverflow(length)
            guard !overflow, sum <= tokenCount else {
                throw fail("document_lengths", "document \(d): length \(length) runs past the \(tokenCount) tokens of the shard")
            }
            end = sum
            ends.append(end)
        }
        guard r.offset == lengthsEnd else {
            throw fail("document_lengths", "the \(documentCount) document lengths take \(r.offset - lengthsEnd + Int(lengthBytes)) bytes, document_lengths_size says \(lengthBytes)")
        }
        guard end == tokenCount else {
            throw fail("document_lengths", "lengths add up to \(end) tokens, token_count is \(tokenCount)")
        }
        let tokenizer = version == 1 ? nil : try ShardMetadata.decodeTaggedFields(&r, fail: failField)
        return LegacyShardMetadata(tokenWidth: width, tokensPerFrame: tokensPerFrame, vocabularySize: vocabularySize,
                                   tokenCount: tokenCount, frames: frames, documentEnds: ends, tokenizer: tokenizer,
                                   formatVersion: version)
    }
}
