import CZlib

/// CRC-32 (the zlib / ISO-HDLC polynomial, as Python's `zlib.crc32`) of a byte range.
@inlinable
public func crc32(_ bytes: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return previous }
    return UInt32(truncatingIfNeeded: CZlib.crc32_z(
        UInt(previous), base.assumingMemoryBound(to: UInt8.self), bytes.count))
}

/// CRC-32 of an array of bytes.
public func crc32(_ bytes: [UInt8]) -> UInt32 {
    bytes.withUnsafeBytes { crc32($0) }
}
