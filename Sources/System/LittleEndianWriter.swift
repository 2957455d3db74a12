/// Little-endian appends onto a growable byte array (encoders off the hot path: messages, shard
/// metadata, manifests, caches).
extension Array where Element == UInt8 {
    /// Appends `value` as little-endian bytes.
    @inlinable
    public mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    /// Appends a Double as its IEEE 754 bit pattern, little-endian.
    @inlinable
    public mutating func appendLE(_ value: Double) { appendLE(value.bitPattern) }

    /// Unsigned LEB128: 7 bits a byte, low bits first, high bit set on all but the last byte.
    public mutating func appendVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        append(UInt8(v))
    }

    /// Overwrites the little-endian `T` at `offset` (to patch a length after the fact).
    /// - Precondition: `offset + T`'s size ≤ `count`.
    @inlinable
    public mutating func storeLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= count, "storeLE past the end")
        withUnsafeMutableBytes { $0.baseAddress!.storeLE(value, at: offset) }
    }
}

/// An array of bytes built by little-endian appends: the encoders' value type for shard metadata,
/// envelopes and manifests (the same appends as `[UInt8].appendLE`).
public struct LittleEndianWriter {
    /// The bytes appended so far.
    public var bytes: [UInt8] = []

    /// An empty writer.
    public init() {}

    /// Appends `value` as little-endian bytes.
    @inlinable
    public mutating func append<T: FixedWidthInteger>(_ value: T) { bytes.appendLE(value) }

    /// Appends raw bytes.
    public mutating func append(bytes other: [UInt8]) { bytes.append(contentsOf: other) }

    /// Appends an unsigned LEB128 varint.
    public mutating func appendVarint(_ value: UInt64) { bytes.appendVarint(value) }
}

extension UnsafeMutableRawPointer {
    /// Stores `value` little-endian at `offset` (no alignment requirement). The caller checks bounds
    /// (the hot path's batch header writer, whose layout is fixed).
    @inlinable
    public func storeLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }
}
