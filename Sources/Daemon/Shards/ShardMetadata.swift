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
    /// The tokenizer the ids come from (format version 2's `tokenizer` tag); nil when unknown (a
    /// version 1 shard, or an import that did not say).
    public var tokenizer: String?
    /// The format version the shard was written in (``ShardFormat/version`` for a new one).
    public var formatVersion: UInt16

    public init(tokenWidth: TokenWidth, tokensPerFrame: Int, vocabularySize: UInt32, tokenCount: UInt64,
                frames: [FrameEntry], documentEnds: [UInt64], tokenizer: String? = nil,
                formatVersion: UInt16 = ShardFormat.version) {
        self.tokenizer = tokenizer
        self.formatVersion = formatVersion
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

    /// The tokenizer as shown to people: its name, or `unknown`.
    public var tokenizerName: String { tokenizer ?? "unknown" }

    /// Checks a tokenizer name for a shard: 1 … ``ShardFormat/maxTokenizerBytes`` UTF-8 bytes, no
    /// control characters (it is printed in logs and diagnostics). Returns what is wrong, or nil.
    public static func problem(withTokenizer name: String) -> String? {
        let bytes = name.utf8.count
        guard bytes > 0, bytes <= ShardFormat.maxTokenizerBytes else {
            return "tokenizer name of \(bytes) bytes must have 1 to \(ShardFormat.maxTokenizerBytes) bytes"
        }
        guard !name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            return "tokenizer name must not contain control characters"
        }
        return nil
    }

    /// The metadata frame's payload (version ``formatVersion``): tag, fixed fields, frame table,
    /// document lengths, the tagged fields (version 2), CRC-32.
    func encodedPayload() -> [UInt8] {
        var w = LittleEndianWriter()
        w.append(bytes: ShardFormat.metadataTag)
        w.append(formatVersion)
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
        if formatVersion >= 2 {
            var fields = LittleEndianWriter()
            if let tokenizer {
                let name = Array(tokenizer.utf8)
                fields.append(ShardFormat.FieldTag.tokenizer.rawValue)
                fields.append(UInt32(name.count))
                fields.append(bytes: name)
            }
            w.append(UInt64(fields.bytes.count))
            w.append(bytes: fields.bytes)
        }
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
        func failField(_ field: String, _ frame: Int?, _ message: String) -> ShardError { fail(field, frame: frame, message) }
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
        guard ShardFormat.readableVersions.contains(version) else {
            throw fail("version", "format version \(version) is not supported (this build reads versions \(ShardFormat.readableVersions.lowerBound) to \(ShardFormat.readableVersions.upperBound))")
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
        let tokenizer = version == 1 ? nil : try decodeTaggedFields(&r, fail: failField)
        return ShardMetadata(tokenWidth: width, tokensPerFrame: tokensPerFrame, vocabularySize: vocabularySize,
                             tokenCount: tokenCount, frames: frames, documentEnds: ends, tokenizer: tokenizer,
                             formatVersion: version)
    }

    /// Reads version 2's tagged-field section (`u64` size, then entries `u16 tag`, `u32 length`,
    /// value), which must fill the rest of the payload. Unknown tags are skipped.
    /// - Returns: the tokenizer name, when the section has one.
    private static func decodeTaggedFields(_ r: inout LittleEndianReader,
                                           fail: (String, Int?, String) -> ShardError) throws(ShardError) -> String? {
        let size = r.read(UInt64.self) ?? 0
        guard size == UInt64(r.remaining) else {
            throw fail("tagged_fields_size", nil, "says \(size) bytes, the rest of the payload is \(r.remaining) bytes")
        }
        var tokenizer: String?
        var index = 0
        while r.remaining > 0 {
            guard let tag = r.read(UInt16.self), let length = r.read(UInt32.self), let value = r.readBytes(Int(length)) else {
                throw fail("tagged_fields", nil, "entry \(index) is truncated (each is u16 tag, u32 length, then length bytes)")
            }
            if tag == ShardFormat.FieldTag.tokenizer.rawValue {
                guard tokenizer == nil else { throw fail("tokenizer", nil, "appears twice (entry \(index))") }
                guard let name = String(validating: value, as: UTF8.self) else {
                    throw fail("tokenizer", nil, "is not valid UTF-8")
                }
                if let problem = problem(withTokenizer: name) { throw fail("tokenizer", nil, problem) }
                tokenizer = name
            }
            index += 1
        }
        return tokenizer
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
