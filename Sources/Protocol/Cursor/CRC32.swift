import CZlib

/// CRC-32 as in zlib, PNG and Python's `zlib.crc32` (reflected polynomial 0xEDB88320,
/// initial value and final xor 0xFFFFFFFF). Check value: CRC32("123456789") = 0xCBF43926.
public enum CRC32 {
    /// The CRC-32 of `bytes`, computed by zlib (the same function the shard format uses).
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        return UInt32(truncatingIfNeeded: crc32_z(0, base.assumingMemoryBound(to: UInt8.self), bytes.count))
    }

    /// The CRC-32 of `bytes`.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}
