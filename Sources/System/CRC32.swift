import CZlib

/// CRC-32 as in zlib, PNG and Python's `zlib.crc32` (the ISO-HDLC polynomial, reflected 0xEDB88320,
/// initial value and final xor 0xFFFFFFFF), computed by zlib: the checksum of the shard format, the
/// cursor and the caches. Check value: `crc32("123456789")` = 0xCBF43926.
///
/// - Parameter continuing: the CRC-32 of the bytes before `bytes` (0 to start), so that a checksum
///   can be computed piece by piece: `crc32(b, continuing: crc32(a))` = `crc32(a + b)`.
@inlinable
public func crc32(_ bytes: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return previous }
    return UInt32(truncatingIfNeeded: CZlib.crc32_z(UInt(previous), base.assumingMemoryBound(to: UInt8.self), bytes.count))
}

/// The CRC-32 of an array of bytes (see ``crc32(_:continuing:)``).
public func crc32(_ bytes: [UInt8], continuing previous: UInt32 = 0) -> UInt32 {
    bytes.withUnsafeBytes { crc32($0, continuing: previous) }
}
