import CZstd

/// A zstd compression context, reused frame after frame. Not thread-safe: one per thread.
public final class ZstdCompressor {
    private let context: OpaquePointer

    /// A compressor at `level` that writes the content size and an XXH64 content checksum into
    /// every frame, so that `zstd -d` and the reader both check the frame's content.
    public init(level: Int32) {
        guard let context = ZSTD_createCCtx() else { fatalError("ZSTD_createCCtx: out of memory") }
        self.context = context
        _ = ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level)
        _ = ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1)
        _ = ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 1)
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Worst-case compressed size of `count` bytes.
    public static func bound(_ count: Int) -> Int { ZSTD_compressBound(count) }

    /// Compresses `source` into one frame written to `destination`; returns its size.
    /// `destination` must hold `bound(source.count)` bytes.
    public func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int {
        let n = ZSTD_compress2(context, destination.baseAddress, destination.count, source.baseAddress, source.count)
        precondition(ZSTD_isError(n) == 0, "ZSTD_compress2: \(String(cString: ZSTD_getErrorName(n)))")
        return n
    }
}

/// A zstd decompression context, reused frame after frame. Not thread-safe: one per thread.
public final class ZstdDecompressor {
    private let context: OpaquePointer

    public init() {
        guard let context = ZSTD_createDCtx() else { fatalError("ZSTD_createDCtx: out of memory") }
        self.context = context
    }

    deinit { ZSTD_freeDCtx(context) }

    /// Decompresses exactly one frame from `source` into `destination`; returns the bytes written
    /// or zstd's error message (corrupt data, checksum mismatch, destination too small).
    public func decompress(_ source: UnsafeRawBufferPointer,
                           into destination: UnsafeMutableRawBufferPointer) -> Result<Int, ZstdFailure> {
        let n = ZSTD_decompressDCtx(context, destination.baseAddress, destination.count,
                                    source.baseAddress, source.count)
        if ZSTD_isError(n) != 0 { return .failure(ZstdFailure(message: String(cString: ZSTD_getErrorName(n)))) }
        return .success(n)
    }

    /// The content size a frame declares in its header, or nil when absent or unreadable.
    public static func declaredContentSize(_ frame: UnsafeRawBufferPointer) -> UInt64? {
        let size = ZSTD_getFrameContentSize(frame.baseAddress, frame.count)
        // ZSTD_CONTENTSIZE_UNKNOWN is (0ULL - 1), ZSTD_CONTENTSIZE_ERROR is (0ULL - 2).
        if size >= UInt64.max - 1 { return nil }
        return size
    }
}

/// What libzstd said when it refused a frame.
public struct ZstdFailure: Error, Sendable, Hashable {
    public var message: String
}
