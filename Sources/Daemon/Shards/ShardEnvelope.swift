import SystemPackage
import TokenfeedSystem

/// What every version of the format shares: the header frame, the footer frame and the metadata
/// frame the footer points at. Three reads, nothing decompressed.
struct ShardEnvelope {
    var version: UInt16
    var tokenWidth: TokenWidth
    var tokensPerFrame: Int
    var fileSize: UInt64
    /// Where the metadata frame starts (its skippable header included).
    var metadataOffset: UInt64
    /// The metadata frame's payload (after its skippable header).
    var metadataPayload: [UInt8]

    /// Reads and checks the header, the footer and the metadata frame's header of the open shard
    /// `file` of `size` bytes.
    /// - Throws: `ShardError` naming `path`: not a shard, truncated, an unknown version, a footer
    ///   that does not place the metadata right before it.
    static func read(_ file: FileDescriptor, path: String, size: UInt64) throws(ShardError) -> ShardEnvelope {
        func fail(_ message: String) -> ShardError { ShardError(path: path, message) }
        let minimum = UInt64(ShardFormat.headerFrameSize + ShardFormat.footerFrameSize)
        guard size >= minimum else {
            throw fail("file is \(size) bytes, shorter than a header and footer (\(minimum)): truncated or not a tokenfeed shard")
        }
        let header = try readBytes(file, path, at: 0, count: ShardFormat.headerFrameSize)
        let footer = try readBytes(file, path, at: size - UInt64(ShardFormat.footerFrameSize), count: ShardFormat.footerFrameSize)

        // Header: skippable magic, payload size, tag, version, width, flags, tokens per frame.
        let (version, width, tokensPerFrame): (UInt16, TokenWidth, Int) = try withBytes(of: header) { (b) throws(ShardError) in
            var r = LittleEndianReader(b)
            guard r.read(UInt32.self) == ShardFormat.skippableMagic, r.read(UInt32.self) == UInt32(ShardFormat.headerPayloadSize),
                  r.readBytes(8) == ShardFormat.headerTag else {
                throw fail("header: bad magic (not a tokenfeed shard)")
            }
            let version = r.read(UInt16.self) ?? 0
            guard ShardFormat.readableVersions.contains(version) || ShardFormat.upgradableVersions.contains(version) else {
                throw fail("header: format version \(version) is not supported (this build reads version \(ShardFormat.version))")
            }
            guard let width = TokenWidth(rawValue: r.read(UInt8.self) ?? 0) else { throw fail("header: token width must be 2 or 4 bytes") }
            _ = r.read(UInt8.self)
            return (version, width, Int(r.read(UInt32.self) ?? 0))
        }

        // Footer: skippable magic, payload size, tag, metadata frame offset and size.
        let (metaOffset, metaSize): (UInt64, UInt64) = try withBytes(of: footer) { (b) throws(ShardError) in
            var r = LittleEndianReader(b)
            guard r.read(UInt32.self) == ShardFormat.skippableMagic, r.read(UInt32.self) == UInt32(ShardFormat.footerPayloadSize),
                  r.readBytes(8) == ShardFormat.footerTag else {
                throw fail("footer: not found at the end of the file (truncated, or not a tokenfeed shard)")
            }
            return (r.read(UInt64.self) ?? 0, r.read(UInt64.self) ?? 0)
        }
        let footerStart = size - UInt64(ShardFormat.footerFrameSize)
        guard metaOffset >= UInt64(ShardFormat.headerFrameSize), metaSize >= UInt64(ShardFormat.skippableHeaderSize),
              metaOffset.addingReportingOverflow(metaSize) == (footerStart, false) else {
            throw fail("footer: metadata at \(metaOffset) of \(metaSize) bytes does not end where the footer starts (\(footerStart))")
        }
        guard let metaPayloadSize = UInt32(exactly: metaSize - UInt64(ShardFormat.skippableHeaderSize)) else {
            throw fail("footer: metadata frame of \(metaSize) bytes is larger than a skippable frame can be (payload at most 4 GiB)")
        }
        let meta = try readBytes(file, path, at: metaOffset, count: Int(metaSize))
        try withBytes(of: meta) { (b) throws(ShardError) in
            var r = LittleEndianReader(b)
            guard r.read(UInt32.self) == ShardFormat.skippableMagic, r.read(UInt32.self) == metaPayloadSize else {
                throw fail("metadata: bad skippable frame header at byte \(metaOffset)")
            }
        }
        return ShardEnvelope(version: version, tokenWidth: width, tokensPerFrame: tokensPerFrame, fileSize: size,
                             metadataOffset: metaOffset, metadataPayload: Array(meta[ShardFormat.skippableHeaderSize...]))
    }

    /// Decodes the version 3 metadata and checks it against the header.
    /// - Throws: `ShardError` naming `path` and the field; a version 1 or 2 shard gets the upgrade hint.
    func metadata(path: String) throws(ShardError) -> ShardMetadata {
        if ShardFormat.upgradableVersions.contains(version) { throw ShardError.needsUpgrade(path: path, version: version) }
        let metadata = try withBytes(of: metadataPayload) { (b) throws(ShardError) in
            try ShardMetadata.decode(payload: b, path: path, metadataOffset: metadataOffset)
        }
        try checkAgainstHeader(metadata.formatVersion, metadata.tokenWidth, metadata.tokensPerFrame, path: path)
        return metadata
    }

    /// Checks the metadata's version, width and T against the header's.
    func checkAgainstHeader(_ metaVersion: UInt16, _ metaWidth: TokenWidth, _ metaTokensPerFrame: Int, path: String) throws(ShardError) {
        guard metaVersion == version else {
            throw ShardError(path: path, field: "version", "metadata: version: \(metaVersion) disagrees with the header's \(version)")
        }
        guard metaWidth == tokenWidth else {
            throw ShardError(path: path, field: "token_width", "metadata: token_width: \(metaWidth) disagrees with the header's \(tokenWidth)")
        }
        guard metaTokensPerFrame == tokensPerFrame else {
            throw ShardError(path: path, field: "tokens_per_frame", "metadata: tokens_per_frame: \(metaTokensPerFrame) disagrees with the header's \(tokensPerFrame)")
        }
    }

    /// Reads exactly `count` bytes at `offset`.
    /// - Throws: `ShardError` naming `path` on a read error or when the file ends first.
    static func readBytes(_ file: FileDescriptor, _ path: String, at offset: UInt64, count: Int) throws(ShardError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let n: Int
        do { n = try bytes.withUnsafeMutableBytes { try file.readFully(at: offset, into: $0) } } catch {
            throw ShardError(path: path, "read of \(count) bytes at \(offset) failed: \(error)")
        }
        guard n == count else { throw ShardError(path: path, "file ends at byte \(offset + UInt64(n)), expected \(count) bytes at \(offset)") }
        return bytes
    }
}
