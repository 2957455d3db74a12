import SystemPackage

/// An open shard: its metadata (read at open, without decompressing anything) and positioned reads
/// of its frames. Immutable and safe to share between threads; decompression uses a
/// ``ZstdDecompressor`` the caller owns, one per thread.
public final class ShardReader: Sendable {
    public let path: String
    public let metadata: ShardMetadata
    public let fileSize: UInt64
    /// The largest compressed data frame, to size read buffers.
    public let largestFrame: Int
    private let file: FileDescriptor

    /// Opens a shard and reads its header, footer and metadata (three reads), checking the
    /// structure and the metadata checksum.
    /// - Throws: `ShardError` naming the file and what is wrong: not a shard, truncated,
    ///   unsupported version, metadata checksum mismatch, inconsistent frame table.
    public init(path: String) throws(ShardError) {
        let file = try openForReading(path)
        do {
            let (metadata, size) = try Self.readStructure(file: file, path: path)
            self.path = path
            self.file = file
            self.metadata = metadata
            self.fileSize = size
            self.largestFrame = Int(metadata.frames.map(\.compressedSize).max() ?? 0)
        } catch {
            try? file.close()
            throw error
        }
    }

    deinit { try? file.close() }

    /// Reads frame `k`'s compressed bytes into the start of `buffer` and checks their CRC-32.
    /// - Returns: the frame's compressed size.
    /// - Throws: `ShardError` naming the frame on a short read or checksum mismatch.
    public func readCompressedFrame(_ k: Int, into buffer: UnsafeMutableRawBufferPointer) throws(ShardError) -> Int {
        let entry = metadata.frames[k]
        let size = Int(entry.compressedSize)
        precondition(buffer.count >= size, "buffer smaller than the frame")
        let target = UnsafeMutableRawBufferPointer(rebasing: buffer[..<size])
        let n: Int
        do { n = try file.readFully(at: entry.offset, into: target) } catch {
            throw ShardError(path: path, frame: k, "read failed: \(error)")
        }
        guard n == size else {
            throw ShardError(path: path, frame: k, "file ends inside the frame (\(n) of \(size) bytes)")
        }
        let computed = crc32(UnsafeRawBufferPointer(target))
        guard computed == entry.checksum else {
            throw ShardError(path: path, frame: k, String(format32: "checksum mismatch (stored", entry.checksum, ", computed", computed))
        }
        return size
    }

    /// Reads, checks and decompresses frame `k` into `destination`, which must hold the frame's
    /// tokens; `scratch` must hold `largestFrame` bytes. No allocation.
    /// - Throws: `ShardError` naming the frame on read errors, checksum mismatch, or a frame zstd refuses.
    public func decodeFrame(_ k: Int, into destination: UnsafeMutableRawBufferPointer,
                            scratch: UnsafeMutableRawBufferPointer, decompressor: ZstdDecompressor) throws(ShardError) {
        let size = try readCompressedFrame(k, into: scratch)
        let range = metadata.tokenRange(ofFrame: k)
        let expected = Int(range.count) * metadata.tokenWidth.bytes
        precondition(destination.count >= expected, "destination smaller than the frame's tokens")
        switch decompressor.decompress(UnsafeRawBufferPointer(rebasing: scratch[..<size]),
                                       into: UnsafeMutableRawBufferPointer(rebasing: destination[..<expected])) {
        case .success(let n) where n == expected:
            return
        case .success(let n):
            throw ShardError(path: path, frame: k, "decompressed to \(n) bytes, expected \(expected)")
        case .failure(let failure):
            throw ShardError(path: path, frame: k, "zstd: \(failure.message)")
        }
    }

    /// Reads the tokens in `range` as 32-bit ids. Allocates: for tools and tests, not the hot path.
    public func tokens(_ range: Range<UInt64>) throws(ShardError) -> [UInt32] {
        precondition(range.upperBound <= metadata.tokenCount, "range beyond the shard")
        guard !range.isEmpty else { return [] }
        let width = metadata.tokenWidth.bytes
        // The frames present hold at most min(tokens_per_frame, token_count) tokens, whatever is declared.
        let frameTokens = Int(min(UInt64(metadata.tokensPerFrame), metadata.tokenCount))
        let frameBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(frameTokens * width, 1), alignment: 64)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: max(largestFrame, 1), alignment: 64)
        defer { frameBuffer.deallocate(); scratch.deallocate() }
        let decompressor = ZstdDecompressor()
        var out: [UInt32] = []
        out.reserveCapacity(range.count)
        for k in metadata.frame(containingToken: range.lowerBound) ... metadata.frame(containingToken: range.upperBound - 1) {
            try decodeFrame(k, into: frameBuffer, scratch: scratch, decompressor: decompressor)
            let frameRange = metadata.tokenRange(ofFrame: k)
            let lo = max(range.lowerBound, frameRange.lowerBound), hi = min(range.upperBound, frameRange.upperBound)
            for t in lo ..< hi {
                let i = Int(t - frameRange.lowerBound)
                out.append(width == 2
                    ? UInt32(UInt16(littleEndian: frameBuffer.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
                    : UInt32(littleEndian: frameBuffer.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
            }
        }
        return out
    }

    // MARK: - Structure

    private static func readStructure(file: FileDescriptor, path: String) throws(ShardError) -> (ShardMetadata, UInt64) {
        func fail(_ message: String) -> ShardError { ShardError(path: path, message) }
        let size: UInt64
        do { size = try file.fileSize() } catch { throw fail("cannot stat: \(error)") }
        let minimum = UInt64(ShardFormat.headerFrameSize + ShardFormat.footerFrameSize)
        guard size >= minimum else {
            throw fail("file is \(size) bytes, shorter than a header and footer (\(minimum)): truncated or not a tokenfeed shard")
        }
        let header = try read(file, path, at: 0, count: ShardFormat.headerFrameSize)
        let footer = try read(file, path, at: size - UInt64(ShardFormat.footerFrameSize), count: ShardFormat.footerFrameSize)

        // Header: skippable magic, payload size, tag, version, width, flags, tokens per frame.
        let (version, width, tokensPerFrame): (UInt16, TokenWidth, Int) = try withBytes(of: header) { (b) throws(ShardError) in
            var r = LittleEndianReader(b)
            guard r.read(UInt32.self) == ShardFormat.skippableMagic, r.read(UInt32.self) == UInt32(ShardFormat.headerPayloadSize),
                  r.readBytes(8) == ShardFormat.headerTag else {
                throw fail("header: bad magic (not a tokenfeed shard)")
            }
            let version = r.read(UInt16.self) ?? 0
            guard ShardFormat.readableVersions.contains(version) else {
                throw fail("header: format version \(version) is not supported (this build reads versions \(ShardFormat.readableVersions.lowerBound) to \(ShardFormat.readableVersions.upperBound))")
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
        let meta = try read(file, path, at: metaOffset, count: Int(metaSize))
        let metadata: ShardMetadata = try withBytes(of: meta) { (b) throws(ShardError) in
            var r = LittleEndianReader(b)
            guard r.read(UInt32.self) == ShardFormat.skippableMagic, r.read(UInt32.self) == metaPayloadSize else {
                throw fail("metadata: bad skippable frame header at byte \(metaOffset)")
            }
            return try ShardMetadata.decode(payload: UnsafeRawBufferPointer(rebasing: b[8...]), path: path, dataEnd: metaOffset)
        }
        guard metadata.formatVersion == version else {
            throw ShardError(path: path, field: "version", "metadata: version: \(metadata.formatVersion) disagrees with the header's \(version)")
        }
        guard metadata.tokenWidth == width else {
            throw ShardError(path: path, field: "token_width", "metadata: token_width: \(metadata.tokenWidth) disagrees with the header's \(width)")
        }
        guard metadata.tokensPerFrame == tokensPerFrame else {
            throw ShardError(path: path, field: "tokens_per_frame", "metadata: tokens_per_frame: \(metadata.tokensPerFrame) disagrees with the header's \(tokensPerFrame)")
        }
        return (metadata, size)
    }

    private static func read(_ file: FileDescriptor, _ path: String, at offset: UInt64, count: Int) throws(ShardError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let n: Int
        do { n = try bytes.withUnsafeMutableBytes { try file.readFully(at: offset, into: $0) } } catch {
            throw ShardError(path: path, "read of \(count) bytes at \(offset) failed: \(error)")
        }
        guard n == count else { throw ShardError(path: path, "file ends at byte \(offset + UInt64(n)), expected \(count) bytes at \(offset)") }
        return bytes
    }
}
