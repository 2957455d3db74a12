import TokenfeedSystem

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

/// What a shard says about itself in its (small) metadata frame: counts, the tokenizer, and where
/// its paged index lies. A few dozen bytes whatever the shard holds: the frame table and the document
/// ends are read page by page when needed (``ShardReader``, ``IndexPageCache``).
public struct ShardMetadata: Sendable, Hashable {
    // Stored widest first (8-byte fields, the tokenizer, 4-, 2-, 1-byte fields), so that the struct
    // has no padding inside: 79 bytes rather than 98 in declaration-by-meaning order — one is kept
    // in memory per open shard (docs/BENCHMARKS.md, "Scale").
    /// Tokens in every data frame but the last.
    public var tokensPerFrame: Int
    public var tokenCount: UInt64
    public var documentCount: Int
    public var frameCount: Int
    /// Where the data frames end and the index frame starts.
    public var indexOffset: UInt64
    /// The tokenizer the ids come from (the `tokenizer` tag); nil when unknown.
    public var tokenizer: String?
    /// Size of the vocabulary the ids come from (every id is below it).
    public var vocabularySize: UInt32
    /// The largest compressed data frame, in bytes (sizes read buffers).
    public var largestFrame: UInt32
    /// CRC-32 of the frame-table section's entries (its pages' bytes without their own CRCs).
    public var frameTableChecksum: UInt32
    /// CRC-32 of the document-end section's bytes (its pages' bytes without their own CRCs).
    public var documentEndsChecksum: UInt32
    /// The CRC-32 the metadata payload ends with (covers every field above, so it fingerprints the
    /// shard's content); 0 until the payload is encoded or when built by hand.
    public var metadataChecksum: UInt32
    /// The format version the shard was written in (``ShardFormat/version``).
    public var formatVersion: UInt16
    public var tokenWidth: TokenWidth

    public init(tokenWidth: TokenWidth, tokensPerFrame: Int, vocabularySize: UInt32, tokenCount: UInt64,
                documentCount: Int, frameCount: Int, largestFrame: UInt32, indexOffset: UInt64,
                frameTableChecksum: UInt32 = 0, documentEndsChecksum: UInt32 = 0, metadataChecksum: UInt32 = 0,
                tokenizer: String? = nil, formatVersion: UInt16 = ShardFormat.version) {
        self.tokenWidth = tokenWidth
        self.tokensPerFrame = tokensPerFrame
        self.vocabularySize = vocabularySize
        self.tokenCount = tokenCount
        self.documentCount = documentCount
        self.frameCount = frameCount
        self.largestFrame = largestFrame
        self.indexOffset = indexOffset
        self.frameTableChecksum = frameTableChecksum
        self.documentEndsChecksum = documentEndsChecksum
        self.metadataChecksum = metadataChecksum
        self.tokenizer = tokenizer
        self.formatVersion = formatVersion
    }

    /// Compressed bytes of all data frames.
    public var compressedBytes: UInt64 { indexOffset - UInt64(ShardFormat.headerFrameSize) }

    /// Where the index pages lie.
    public var indexLayout: IndexLayout {
        IndexLayout(indexOffset: indexOffset, frameCount: frameCount, documentCount: documentCount)
    }

    /// The token range frame `k` holds.
    public func tokenRange(ofFrame k: Int) -> Range<UInt64> {
        let start = UInt64(k) * UInt64(tokensPerFrame)
        return start ..< min(start + UInt64(tokensPerFrame), tokenCount)
    }

    /// The frame that holds token `t`.
    public func frame(containingToken t: UInt64) -> Int { Int(t / UInt64(tokensPerFrame)) }

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

    /// The metadata frame's payload: tag, fixed fields, tagged fields, CRC-32 (docs/SHARDS.md).
    /// ``metadataChecksum`` is not read: the payload's own CRC-32 is computed.
    func encodedPayload() -> [UInt8] {
        var w = Self.fixedPrefix(version: formatVersion, width: tokenWidth, tokensPerFrame: tokensPerFrame,
                                 vocabularySize: vocabularySize, frameCount: frameCount, tokenCount: tokenCount,
                                 documentCount: documentCount)
        w.append(largestFrame)
        w.append(frameTableChecksum)
        w.append(indexOffset)
        w.append(documentEndsChecksum)
        w.append(UInt32(0))                     // reserved
        Self.appendTaggedFields(&w, tokenizer: tokenizer)
        w.append(crc32(w.bytes))
        return w.bytes
    }

    /// The payload's first 40 bytes, the same in every version: tag, version, width, flags, T, V,
    /// frame count, token count, document count.
    static func fixedPrefix(version: UInt16, width: TokenWidth, tokensPerFrame: Int, vocabularySize: UInt32,
                            frameCount: Int, tokenCount: UInt64, documentCount: Int) -> LittleEndianWriter {
        var w = LittleEndianWriter()
        w.append(bytes: ShardFormat.metadataTag)
        w.append(version)
        w.append(width.rawValue)
        w.append(UInt8(0))                      // flags
        w.append(UInt32(tokensPerFrame))
        w.append(vocabularySize)
        w.append(UInt32(frameCount))
        w.append(tokenCount)
        w.append(UInt64(documentCount))
        return w
    }

    /// Appends the tagged-field section (its `u64` size, then the tokenizer entry when known).
    static func appendTaggedFields(_ w: inout LittleEndianWriter, tokenizer: String?) {
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

    /// Parses and checks a version 3 metadata payload. Every field is checked against the file
    /// (`metadataOffset`: where the metadata frame starts, which the index frame must end at) and
    /// against the other fields before it is used in any arithmetic, and all arithmetic on file
    /// values is checked.
    /// - Throws: `ShardError` naming `path`, the field (``ShardError/field``, as named in
    ///   docs/SHARDS.md) and what the value should be; a version 1 or 2 payload is refused with the
    ///   command that upgrades it.
    public static func decode(payload: UnsafeRawBufferPointer, path: String, metadataOffset: UInt64) throws(ShardError) -> ShardMetadata {
        func fail(_ field: String, _ message: String) -> ShardError {
            ShardError(path: path, field: field, "metadata: \(field): \(message)")
        }
        let fixedAndCRC = ShardFormat.metadataFixedSize + 8 + 4        // fixed fields, E, CRC-32
        // The version is checked first, so that an old shard gets the upgrade hint.
        if payload.count >= 10 {
            let version = payload.loadLE(8, as: UInt16.self)
            if ShardFormat.upgradableVersions.contains(version) { throw ShardError.needsUpgrade(path: path, version: version) }
        }
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
        guard ShardFormat.readableVersions.contains(version) else {
            throw fail("version", "format version \(version) is not supported (this build reads version \(ShardFormat.version))")
        }
        let widthByte = r.read(UInt8.self) ?? 0
        guard let width = TokenWidth(rawValue: widthByte) else {
            throw fail("token_width", "token width \(widthByte) must be 2 or 4 bytes")
        }
        _ = r.read(UInt8.self)                       // flags, none defined
        let rawTokensPerFrame = r.read(UInt32.self) ?? 0
        let vocabularySize = r.read(UInt32.self) ?? 0
        let rawFrameCount = r.read(UInt32.self) ?? 0
        let tokenCount = r.read(UInt64.self) ?? 0
        let rawDocumentCount = r.read(UInt64.self) ?? 0
        let largestFrame = r.read(UInt32.self) ?? 0
        let frameTableChecksum = r.read(UInt32.self) ?? 0
        let indexOffset = r.read(UInt64.self) ?? 0
        let documentEndsChecksum = r.read(UInt32.self) ?? 0
        _ = r.read(UInt32.self)                      // reserved

        guard rawTokensPerFrame > 0, rawTokensPerFrame <= UInt32(ShardFormat.maxTokensPerFrame) else {
            throw fail("tokens_per_frame", "\(rawTokensPerFrame) is out of range 1...\(ShardFormat.maxTokensPerFrame)")
        }
        let tokensPerFrame = Int(rawTokensPerFrame)
        let frameCount = Int(rawFrameCount)
        let dataStart = UInt64(ShardFormat.headerFrameSize)
        guard indexOffset >= dataStart, indexOffset < metadataOffset else {
            throw fail("index_offset", "\(indexOffset) must lie between the header's end (\(dataStart)) and the metadata (\(metadataOffset))")
        }
        let dataBytes = indexOffset - dataStart
        try checkCounts(frameCount: frameCount, dataBytes: dataBytes, tokenCount: tokenCount, tokensPerFrame: tokensPerFrame,
                        documentCount: rawDocumentCount, fail: fail)
        guard frameCount == 0 ? largestFrame == 0 : (largestFrame > 0 && UInt64(largestFrame) <= dataBytes) else {
            throw fail("largest_frame", "\(largestFrame) bytes, expected \(frameCount == 0 ? "0 (no frame)" : "1…\(dataBytes)")")
        }
        // The index frame (prefix, frame table, document ends) must end exactly where the metadata starts.
        let tableBytes = IndexSection.frameTable.bytes(entries: UInt64(frameCount)) ?? .max
        let endsBytes = IndexSection.documentEnds.bytes(entries: rawDocumentCount) ?? .max
        let (a, o1) = indexOffset.addingReportingOverflow(UInt64(ShardFormat.indexPrefixSize))
        let (b, o2) = a.addingReportingOverflow(tableBytes)
        let (indexEnd, o3) = b.addingReportingOverflow(endsBytes)
        guard !o1, !o2, !o3, indexEnd == metadataOffset else {
            throw fail("document_count", "an index of \(frameCount) frames and \(rawDocumentCount) documents at \(indexOffset) does not end where the metadata starts (\(metadataOffset))")
        }
        guard rawDocumentCount > 0 || tokenCount == 0 else {
            throw fail("document_count", "0 documents cannot hold \(tokenCount) tokens")
        }
        let tokenizer = try decodeTaggedFields(&r) { field, _, message in fail(field, message) }
        return ShardMetadata(tokenWidth: width, tokensPerFrame: tokensPerFrame, vocabularySize: vocabularySize,
                             tokenCount: tokenCount, documentCount: Int(rawDocumentCount), frameCount: frameCount,
                             largestFrame: largestFrame, indexOffset: indexOffset, frameTableChecksum: frameTableChecksum,
                             documentEndsChecksum: documentEndsChecksum, metadataChecksum: stored, tokenizer: tokenizer,
                             formatVersion: version)
    }

    /// Checks the counts against each other and the data section (every version): the frames fit
    /// in `dataBytes` (each is at least a byte), `frame_count` = ⌈token_count / T⌉ (computed without
    /// overflow), and no more documents than tokens.
    static func checkCounts(frameCount: Int, dataBytes: UInt64, tokenCount: UInt64, tokensPerFrame: Int, documentCount: UInt64,
                            fail: (String, String) -> ShardError) throws(ShardError) {
        guard UInt64(frameCount) <= dataBytes else {
            throw fail("frame_count", "\(frameCount) frames cannot fit in the \(dataBytes) bytes of data frames")
        }
        let (whole, rest) = tokenCount.quotientAndRemainder(dividingBy: UInt64(tokensPerFrame))
        let expectedFrames = whole + (rest == 0 ? 0 : 1)
        guard UInt64(frameCount) == expectedFrames else {
            throw fail("token_count", "\(tokenCount) tokens at \(tokensPerFrame) per frame need \(expectedFrames) frames, frame_count is \(frameCount)")
        }
        guard documentCount <= tokenCount else {
            throw fail("document_count", "\(documentCount) documents cannot hold \(tokenCount) tokens (each document holds at least one)")
        }
    }

    /// Reads the tagged-field section (`u64` size, then entries `u16 tag`, `u32 length`, value),
    /// which must fill the rest of the payload. Unknown tags are skipped.
    /// - Returns: the tokenizer name, when the section has one.
    static func decodeTaggedFields(_ r: inout LittleEndianReader,
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

extension ShardError {
    /// A version 1 or 2 shard, which this build no longer serves: names the file and the command that
    /// rewrites its folder.
    static func needsUpgrade(path: String, version: UInt16) -> ShardError {
        let folder = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return ShardError(path: path, field: "version",
                          "format version \(version) shard: this build reads version \(ShardFormat.version); run `tokenfeed shard upgrade \(folder.isEmpty ? "." : folder)` (rewrites the folder's shards in place, without recompressing)")
    }
}
