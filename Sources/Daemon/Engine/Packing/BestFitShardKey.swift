import TokenfeedShards
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a shard's bestfit row count depends on — its document lengths — as a fingerprint that is
/// cheap to take: the persisted row counts (``BestFitRowStore``) are looked up by it, so a count is
/// reused only for a shard with the same content.
///
/// - `metadataChecksum`: the CRC-32 the shard stores over its metadata payload (docs/SHARDS.md),
///   which covers the token count, the frame table and every document length. It is read from the
///   last 36 bytes of the file (4 bytes of CRC, then the footer): one small read per shard.
/// - `tokenCount`, `documentCount`, `frameTableChecksum` (CRC-32 of the frame table: offset, size
///   and CRC of every data frame) and `documentSampleChecksum` (CRC-32 of up to 1,024 evenly spaced
///   document ends, the first and last included) are taken from the metadata held in memory, the one
///   the rows are computed from. They tie the key to that metadata should the file have been
///   replaced after it was opened.
///
/// Taking a key is O(frames + 1,024) and never reads a document length section.
struct BestFitShardKey: Hashable, Sendable {
    var tokenCount: UInt64
    var documentCount: UInt64
    var metadataChecksum: UInt32
    var frameTableChecksum: UInt32
    var documentSampleChecksum: UInt32

    /// Document ends sampled into ``documentSampleChecksum``.
    static let sampledDocumentEnds = 1024

    /// The key of an open shard.
    /// - Throws: `EngineError` naming the shard file when it cannot be read, or when its size or
    ///   footer no longer match the shard that was opened (it was replaced since).
    static func of(_ shard: ShardReader) throws(EngineError) -> BestFitShardKey {
        let metadata = shard.metadata
        let stored = try storedMetadataChecksum(shard)
        var frameTable: UInt32 = 0
        for frame in metadata.frames {
            var entry = (frame.offset.littleEndian, frame.compressedSize.littleEndian, frame.checksum.littleEndian)
            frameTable = withUnsafeBytes(of: &entry) { crc32(UnsafeRawBufferPointer(rebasing: $0[0 ..< 16]), continuing: frameTable) }
        }
        var sample: UInt32 = 0
        let n = metadata.documentCount
        let m = min(n, sampledDocumentEnds)
        for j in 0 ..< m {
            let d = m == 1 ? n - 1 : Int((UInt64(j) * UInt64(n - 1)) / UInt64(m - 1))
            var end = metadata.documentEnds[d].littleEndian
            sample = withUnsafeBytes(of: &end) { crc32($0, continuing: sample) }
        }
        return BestFitShardKey(tokenCount: metadata.tokenCount, documentCount: UInt64(n), metadataChecksum: stored,
                               frameTableChecksum: frameTable, documentSampleChecksum: sample)
    }

    /// The metadata CRC-32 stored in the shard's file, checked against what was opened: the same file
    /// size, and a footer that places the metadata right after the frame table held in memory.
    private static func storedMetadataChecksum(_ shard: ShardReader) throws(EngineError) -> UInt32 {
        func fail(_ message: String) -> EngineError { EngineError("\(shard.path): \(message)") }
        let fd = open(shard.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("cannot open to read its metadata checksum: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw fail("cannot stat: \(String(cString: strerror(errno)))") }
        guard UInt64(status.st_size) == shard.fileSize else {
            throw fail("the file is \(status.st_size) bytes, it was \(shard.fileSize) when opened (replaced since)")
        }
        let tail = 4 + ShardFormat.footerFrameSize
        guard shard.fileSize >= UInt64(ShardFormat.headerFrameSize + tail) else { throw fail("file too short for a footer") }
        var bytes = [UInt8](repeating: 0, count: tail)
        let read = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, tail, off_t(shard.fileSize) - off_t(tail)) }
        guard read == tail else { throw fail("cannot read the footer (read \(read) of \(tail) bytes)") }
        func u32(_ at: Int) -> UInt32 { bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt32.self)) } }
        func u64(_ at: Int) -> UInt64 { bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt64.self)) } }
        let frames = shard.metadata.frames
        let metadataOffset = frames.last.map { $0.offset + UInt64($0.compressedSize) } ?? UInt64(ShardFormat.headerFrameSize)
        guard u32(4) == ShardFormat.skippableMagic, u32(8) == UInt32(ShardFormat.footerPayloadSize),
              Array(bytes[12 ..< 20]) == ShardFormat.footerTag,
              u64(20) == metadataOffset, u64(20) &+ u64(28) == shard.fileSize - UInt64(ShardFormat.footerFrameSize) else {
            throw fail("footer does not match the shard that was opened (replaced since)")
        }
        return u32(0)
    }
}
