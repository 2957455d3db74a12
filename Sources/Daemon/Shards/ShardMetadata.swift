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

    /// Parses and checks a metadata payload. Every inconsistency is an error naming `path` and the field.
    static func decode(payload: UnsafeRawBufferPointer, path: String) throws(ShardError) -> ShardMetadata {
        func fail(_ message: String) -> ShardError { ShardError(path: path, "metadata: \(message)") }
        guard payload.count >= ShardFormat.metadataFixedSize + 12 else {
            throw fail("payload of \(payload.count) bytes is shorter than the fixed fields")
        }
        let stored = UnsafeRawBufferPointer(rebasing: payload[(payload.count - 4)...]).loadUnaligned(as: UInt32.self)
        let computed = crc32(UnsafeRawBufferPointer(rebasing: payload[..<(payload.count - 4)]))
        guard UInt32(littleEndian: stored) == computed else {
            throw fail(String(format32: "checksum mismatch (stored", UInt32(littleEndian: stored), ", computed", computed))
        }
        var r = LittleEndianReader(UnsafeRawBufferPointer(rebasing: payload[..<(payload.count - 4)]))
        guard r.readBytes(8) == ShardFormat.metadataTag else { throw fail("tag is not TFMETA") }
        let version = r.read(UInt16.self)!
        guard version == ShardFormat.version else {
            throw fail("format version \(version) is not supported (this build reads version \(ShardFormat.version))")
        }
        guard let width = TokenWidth(rawValue: r.read(UInt8.self)!) else { throw fail("token width must be 2 or 4 bytes") }
        _ = r.read(UInt8.self)!                      // flags, none defined in version 1
        let tokensPerFrame = Int(r.read(UInt32.self)!)
        let vocabularySize = r.read(UInt32.self)!
        let frameCount = Int(r.read(UInt32.self)!)
        let tokenCount = r.read(UInt64.self)!
        let documentCount = r.read(UInt64.self)!
        guard tokensPerFrame > 0, tokensPerFrame <= ShardFormat.maxTokensPerFrame else {
            throw fail("tokens per frame \(tokensPerFrame) is out of range 1...\(ShardFormat.maxTokensPerFrame)")
        }
        let expectedFrames = (tokenCount + UInt64(tokensPerFrame) - 1) / UInt64(tokensPerFrame)
        guard UInt64(frameCount) == expectedFrames else {
            throw fail("frame count \(frameCount) does not match \(tokenCount) tokens at \(tokensPerFrame) per frame (expected \(expectedFrames))")
        }
        guard r.remaining >= frameCount * ShardFormat.frameEntrySize + 8 else { throw fail("frame table is truncated") }
        var frames: [FrameEntry] = []
        frames.reserveCapacity(frameCount)
        for _ in 0 ..< frameCount {
            frames.append(FrameEntry(offset: r.read(UInt64.self)!, compressedSize: r.read(UInt32.self)!,
                                     checksum: r.read(UInt32.self)!))
        }
        let lengthBytes = r.read(UInt64.self)!
        guard lengthBytes == UInt64(r.remaining) else {
            throw fail("document length section is \(r.remaining) bytes, header says \(lengthBytes)")
        }
        guard documentCount <= UInt64(r.remaining) else { throw fail("document count \(documentCount) exceeds its section") }
        var ends: [UInt64] = []
        ends.reserveCapacity(Int(documentCount))
        var end: UInt64 = 0
        for d in 0 ..< Int(documentCount) {
            guard let length = r.readVarint() else { throw fail("document \(d): truncated length") }
            let (sum, overflow) = end.addingReportingOverflow(length)
            guard !overflow, length > 0 else { throw fail("document \(d): invalid length \(length)") }
            end = sum
            ends.append(end)
        }
        guard r.remaining == 0 else { throw fail("\(r.remaining) stray bytes after the document lengths") }
        guard end == tokenCount else {
            throw fail("document lengths add up to \(end) tokens, the shard holds \(tokenCount)")
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
