/// Where one data frame lies in its shard and how to check it.
public struct FrameEntry: Sendable, Hashable {
    /// Offset of the frame's first byte from the start of the file.
    public var offset: UInt64
    /// Size of the compressed frame in bytes.
    public var compressedSize: UInt32
    /// CRC-32 of the compressed frame's bytes.
    public var checksum: UInt32

    public init(offset: UInt64, compressedSize: UInt32, checksum: UInt32) {
        self.offset = offset
        self.compressedSize = compressedSize
        self.checksum = checksum
    }
}

/// Everything a shard says about itself, read from its skippable frames without decompressing data.
public struct ShardMetadata: Sendable, Hashable {
    public var tokenWidth: TokenWidth
    /// Tokens in every data frame but the last.
    public var tokensPerFrame: Int
    /// Size of the vocabulary the ids come from (every id is below it).
    public var vocabularySize: UInt32
    public var tokenCount: UInt64
    public var frames: [FrameEntry]
    /// Cumulative document end offsets, in tokens (as datatrove's `.ds.index`); the last equals `tokenCount`.
    public var documentEnds: [UInt64]

    public init(tokenWidth: TokenWidth, tokensPerFrame: Int, vocabularySize: UInt32, tokenCount: UInt64,
                frames: [FrameEntry], documentEnds: [UInt64]) {
        self.tokenWidth = tokenWidth
        self.tokensPerFrame = tokensPerFrame
        self.vocabularySize = vocabularySize
        self.tokenCount = tokenCount
        self.frames = frames
        self.documentEnds = documentEnds
    }

    public var documentCount: Int { documentEnds.count }

    /// Compressed bytes of all data frames.
    public var compressedBytes: UInt64 { frames.reduce(0) { $0 + UInt64($1.compressedSize) } }

    /// The token range frame `k` holds.
    public func tokenRange(ofFrame k: Int) -> Range<UInt64> {
        let start = UInt64(k) * UInt64(tokensPerFrame)
        return start ..< min(start + UInt64(tokensPerFrame), tokenCount)
    }

    /// The frame that holds token `t`.
    public func frame(containingToken t: UInt64) -> Int { Int(t / UInt64(tokensPerFrame)) }

    /// The document that holds token `t` (binary search over the document ends).
    public func document(containingToken t: UInt64) -> Int {
        var lo = 0, hi = documentEnds.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if documentEnds[mid] <= t { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Start offset of document `d`, in tokens.
    public func documentStart(_ d: Int) -> UInt64 { d == 0 ? 0 : documentEnds[d - 1] }

    /// The metadata frame's payload: tag, fixed fields, frame table, document lengths, CRC-32.
    func encodedPayload() -> [UInt8] {
        var w = LittleEndianWriter()
        w.append(bytes: ShardFormat.metadataTag)
        w.append(ShardFormat.version)
        w.append(tokenWidth.rawValue)
        w.append(UInt8(0))                      // flags
        w.append(UInt32(tokensPerFrame))
        w.append(vocabularySize)
        w.append(UInt32(frames.count))
        w.append(tokenCount)
        w.append(UInt64(documentEnds.count))
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
        w.append(crc32(w.bytes))
        return w.bytes
    }

    /// Parses and checks a metadata payload. Every field is checked against the file (`dataEnd`:
    /// where the data frames must end, i.e. the metadata frame's offset) and against the other
    /// fields before it is used in any arithmetic, and all arithmetic on file values is checked.
    /// - Throws: `ShardError` naming `path`, the field (``ShardError/field``, as named in
    ///   docs/SHARDS.md), the frame for frame-table entries, and what the value should be.
    static func decode(payload: UnsafeRawBufferPointer, path: String, dataEnd: UInt64) throws(ShardError) -> ShardMetadata {
        func fail(_ field: String, frame: Int? = nil, _ message: String) -> ShardError {
            ShardError(path: path, frame: frame, field: field, "metadata: \(field): \(message)")
        }
        let fixedAndCRC = ShardFormat.metadataFixedSize + 8 + 4        // fixed fields, L, CRC-32
        guard payload.count >= fixedAndCRC else {
            throw fail("payload_size", "payload of \(payload.count) bytes is shorter than the fixed fields (at least \(fixedAndCRC))")
        }
        let stored = UnsafeRawBufferPointer(rebasing: payload[(payload.count - 4)...]).loadUnaligned(as: UInt32.self)
        let computed = crc32(UnsafeRawBufferPointer(rebasing: payload[..<(payload.count - 4)]))
        guard UInt32(littleEndian: stored) == computed else {
            throw fail("crc32", String(format32: "checksum mismatch (stored", UInt32(littleEndian: stored), ", computed", computed))
        }
        // The fixed fields are all present (checked above), so these reads cannot fail.
        var r = LittleEndianReader(UnsafeRawBufferPointer(rebasing: payload[..<(payload.count - 4)]))
        guard r.readBytes(8) == ShardFormat.metadataTag else { throw fail("tag", "tag is not TFMETA") }
        let version = r.read(UInt16.self) ?? 0
        guard version == ShardFormat.version else {
            throw fail("version", "format version \(version) is not supported (this build reads version \(ShardFormat.version))")
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
        guard UInt64(frameCount) <= dataBytes else {
            throw fail("frame_count", "\(frameCount) frames cannot fit in the \(dataBytes) bytes of data frames")
        }
        // n = ⌈token_count / T⌉, computed without overflow.
        let (whole, rest) = tokenCount.quotientAndRemainder(dividingBy: UInt64(tokensPerFrame))
        let expectedFrames = whole + (rest == 0 ? 0 : 1)
        guard UInt64(frameCount) == expectedFrames else {
            throw fail("token_count", "\(tokenCount) tokens at \(tokensPerFrame) per frame need \(expectedFrames) frames, frame_count is \(frameCount)")
        }
        guard documentCount <= tokenCount else {
            throw fail("document_count", "\(documentCount) documents cannot hold \(tokenCount) tokens (each document holds at least one)")
        }
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
        guard lengthBytes == UInt64(r.remaining) else {
            throw fail("document_lengths_size", "says \(lengthBytes) bytes, the section is \(r.remaining) bytes")
        }
        guard documentCount <= UInt64(r.remaining) else {
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
        guard r.remaining == 0 else {
            throw fail("document_lengths", "\(r.remaining) stray bytes after the \(documentCount) document lengths")
        }
        guard end == tokenCount else {
            throw fail("document_lengths", "lengths add up to \(end) tokens, token_count is \(tokenCount)")
        }
        return ShardMetadata(tokenWidth: width, tokensPerFrame: tokensPerFrame, vocabularySize: vocabularySize,
                             tokenCount: tokenCount, frames: frames, documentEnds: ends)
    }
}

extension String {
    /// "label 0x…, label2 0x…)" for checksum messages.
    init(format32 a: String, _ x: UInt32, _ b: String, _ y: UInt32) {
        func hex(_ v: UInt32) -> String {
            let s = String(v, radix: 16)
            return "0x" + String(repeating: "0", count: 8 - s.count) + s
        }
        self = "\(a) \(hex(x))\(b) \(hex(y)))"
    }
}
