/// A bounds-checked reader of little-endian integers, byte runs and LEB128 varints, for every binary
/// format of the package (the wire protocol's messages, shard metadata and envelopes, manifests,
/// caches, imported Megatron indexes).
///
/// Every read checks its bound first. The throwing reads name the field and its offset in the
/// enclosing file or frame (``LittleEndianError``); the optional reads (`read(_:)`, `readBytes(_:)`,
/// `readVarint()`) return nil instead, for formats that report a truncation as a whole.
///
/// Invariant: `0 <= offset <= bytes.count`.
public struct LittleEndianReader {
    /// The bytes read.
    public let bytes: UnsafeRawBufferPointer
    /// The next byte to read, counted from `bytes`' start.
    public private(set) var offset: Int = 0
    /// Where `bytes[0]` sits in the enclosing file or frame, so that errors give whole-file offsets.
    public let baseOffset: Int

    /// A reader at the start of `bytes`, which sit at `baseOffset` in their file or frame.
    public init(_ bytes: UnsafeRawBufferPointer, baseOffset: Int = 0) {
        self.bytes = bytes
        self.baseOffset = baseOffset
    }

    /// Bytes not read yet.
    public var remaining: Int { bytes.count - offset }

    /// An error about `field` at the current offset, or at `offset` when given.
    public func failure(_ field: String, _ problem: String, at offset: Int? = nil) -> LittleEndianError {
        LittleEndianError(field: field, offset: baseOffset + (offset ?? self.offset), problem: problem)
    }

    // MARK: Reads that name the field

    /// Reads a `T` stored little-endian.
    /// - Throws: ``LittleEndianError`` naming `field` when fewer than `T`'s size bytes remain.
    public mutating func read<T: FixedWidthInteger>(_ type: T.Type, _ field: String) throws(LittleEndianError) -> T {
        guard let value = read(T.self) else {
            throw failure(field, "truncated: needs \(MemoryLayout<T>.size) bytes, \(remaining) left")
        }
        return value
    }

    /// Reads `count` bytes (a view into `bytes`, not a copy).
    /// - Throws: ``LittleEndianError`` naming `field` when `count` is negative or more than remain.
    public mutating func read(bytes count: Int, _ field: String) throws(LittleEndianError) -> UnsafeRawBufferPointer {
        guard count >= 0, remaining >= count else {
            throw failure(field, "truncated: needs \(count) bytes, \(remaining) left")
        }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + count])
    }

    /// Reads an unsigned LEB128 varint of at most 10 bytes; on failure reads nothing.
    /// - Throws: ``LittleEndianError`` naming `field` when it is truncated or longer than 64 bits.
    public mutating func readVarint(_ field: String) throws(LittleEndianError) -> UInt64 {
        let start = offset
        guard let value = readVarint() else {
            // A varint of 64 bits takes at most 10 bytes: a failure after 10 is a too-long one.
            let problem = offset - start >= 10 ? "varint longer than 64 bits" : "truncated varint"
            offset = start
            throw failure(field, problem)
        }
        return value
    }

    // MARK: Reads that return nil

    /// Reads a `T` stored little-endian, or returns nil (reading nothing) when fewer than its size bytes remain.
    public mutating func read<T: FixedWidthInteger>(_: T.Type) -> T? {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { return nil }
        let value = bytes.loadLE(offset, as: T.self)
        offset += size
        return value
    }

    /// Reads `count` bytes into an array, or nil (reading nothing) when fewer remain.
    public mutating func readBytes(_ count: Int) -> [UInt8]? {
        guard count >= 0, remaining >= count else { return nil }
        defer { offset += count }
        return Array(bytes[offset ..< offset + count])
    }

    /// Reads an unsigned LEB128 varint of at most 10 bytes, or nil when it is truncated or too long.
    public mutating func readVarint() -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while offset < bytes.count {
            let byte = bytes[offset]
            offset += 1
            if shift == 63 && byte > 1 { return nil }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { return nil }
        }
        return nil
    }
}

extension UnsafeRawBufferPointer {
    /// Loads a little-endian integer at `offset` (no alignment requirement). The caller checks bounds:
    /// for the hot path (batch and frame views), where the layout was validated once.
    @inlinable
    public func loadLE<T: FixedWidthInteger>(_ offset: Int, as type: T.Type) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

extension UnsafeRawPointer {
    /// Loads a little-endian integer at `offset` (no alignment requirement). The caller checks bounds.
    @inlinable
    public func loadLE<T: FixedWidthInteger>(_ offset: Int, as type: T.Type) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

extension UnsafeMutableRawBufferPointer {
    /// Loads a little-endian integer at `offset` (no alignment requirement). The caller checks bounds.
    @inlinable
    public func loadLE<T: FixedWidthInteger>(_ offset: Int, as type: T.Type) -> T {
        UnsafeRawBufferPointer(self).loadLE(offset, as: T.self)
    }
}
