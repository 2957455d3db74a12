/// Little-endian appends onto a growable byte array (the non-hot-path encoder).
extension Array where Element == UInt8 {
    /// Appends `value` as little-endian bytes.
    @inlinable
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        var v = value.littleEndian
        Swift.withUnsafeBytes(of: &v) { append(contentsOf: $0) }
    }

    /// Appends a Double as its IEEE 754 bit pattern, little-endian.
    mutating func appendLE(_ value: Double) { appendLE(value.bitPattern) }

    /// Appends a `str16`: u16 byte length, then the UTF-8 bytes.
    /// - Precondition: the UTF-8 form is at most `maxBytes` bytes (and at most 65,535).
    mutating func appendString16(_ value: String, maxBytes: Int, field: StaticString) {
        let utf8 = value.utf8
        precondition(utf8.count <= maxBytes && utf8.count <= 0xFFFF,
                     "\(field): \(utf8.count) UTF-8 bytes, at most \(maxBytes) allowed")
        appendLE(UInt16(utf8.count))
        append(contentsOf: utf8)
    }

    /// Overwrites the little-endian u32 at `offset` (used to patch a length after the fact).
    mutating func storeLE(_ value: UInt32, at offset: Int) {
        for i in 0..<4 { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
    }
}

extension String {
    /// The longest prefix whose UTF-8 form fits in `maxBytes`, cut at a character boundary.
    func utf8Prefix(maxBytes: Int) -> String {
        if utf8.count <= maxBytes { return self }
        var result = ""
        var used = 0
        for ch in self {
            let n = ch.utf8.count
            if used + n > maxBytes { break }
            result.append(ch)
            used += n
        }
        return result
    }
}

extension UnsafeMutableRawPointer {
    /// Stores `value` little-endian at `offset` (no alignment requirement).
    @inlinable
    func storeLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }
}

extension UnsafeRawBufferPointer {
    /// Loads a little-endian integer at `offset` (no alignment requirement). Caller checks bounds.
    @inlinable
    func loadLE<T: FixedWidthInteger>(_ offset: Int, as type: T.Type) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
