import TokenfeedSystem

/// A bounds-checked little-endian reader over a message payload: the package's
/// `LittleEndianReader`, with every failure a `malformed_frame` `ProtocolError` naming the message,
/// the field and its offset in the frame ("Hello.world_size at offset 32: truncated: …").
struct ByteReader {
    private var reader: LittleEndianReader
    /// Message name used in error messages, e.g. "Hello".
    let message: String

    /// - Parameter frameOffset: offset of `bytes[0]` within the frame (24 for a payload), so errors name frame offsets.
    init(_ bytes: UnsafeRawBufferPointer, frameOffset: Int = FrameHeader.size, message: String) {
        self.reader = LittleEndianReader(bytes, baseOffset: frameOffset)
        self.message = message
    }

    /// The next byte to read, counted from the payload's start.
    var position: Int { reader.offset }
    var remaining: Int { reader.remaining }

    /// A `malformed_frame` error about `field` at the current position (or `at`).
    func failure(_ field: String, _ detail: String, at: Int? = nil) -> ProtocolError {
        failure(reader.failure(field, detail, at: at))
    }

    /// `error` as a `malformed_frame` error of this message.
    private func failure(_ error: LittleEndianError) -> ProtocolError {
        ProtocolError(.malformedFrame, "\(message).\(error)", detail: "\(message).\(error.field)")
    }

    mutating func read<T: FixedWidthInteger>(_ type: T.Type, _ field: String) throws(ProtocolError) -> T {
        do { return try reader.read(T.self, field) } catch { throw failure(error) }
    }

    mutating func u8(_ field: String) throws(ProtocolError) -> UInt8 { try read(UInt8.self, field) }
    mutating func u16(_ field: String) throws(ProtocolError) -> UInt16 { try read(UInt16.self, field) }
    mutating func u32(_ field: String) throws(ProtocolError) -> UInt32 { try read(UInt32.self, field) }
    mutating func u64(_ field: String) throws(ProtocolError) -> UInt64 { try read(UInt64.self, field) }
    mutating func f64(_ field: String) throws(ProtocolError) -> Double {
        Double(bitPattern: try read(UInt64.self, field))
    }

    /// Reads an integer that must be zero (reserved).
    mutating func reserved<T: FixedWidthInteger>(_ type: T.Type, _ field: String) throws(ProtocolError) {
        let start = position
        let value = try read(T.self, field)
        guard value == 0 else { throw failure(field, "reserved, must be 0, got \(value)", at: start) }
    }

    /// Reads `count` raw bytes.
    mutating func raw(_ count: Int, _ field: String) throws(ProtocolError) -> UnsafeRawBufferPointer {
        do { return try reader.read(bytes: count, field) } catch { throw failure(error) }
    }

    /// Reads a `str16` (u16 length + UTF-8) of at most `maxBytes` bytes, validating the UTF-8.
    mutating func string16(_ field: String, maxBytes: Int) throws(ProtocolError) -> String {
        let start = position
        let length = Int(try u16(field + ".length"))
        guard length <= maxBytes else {
            throw failure(field, "length \(length) exceeds the limit of \(maxBytes) bytes", at: start)
        }
        let body = try raw(length, field)
        guard let text = String(validating: body, as: UTF8.self) else {
            throw failure(field, "not valid UTF-8", at: start + 2)
        }
        return text
    }

    /// Reads a u32 element count and checks that `count × minimumElementSize` bytes can follow
    /// (so a hostile count never causes a large allocation) and that it is within `range`.
    mutating func count(_ field: String, minimumElementSize: Int,
                        range: ClosedRange<UInt32>) throws(ProtocolError) -> Int {
        let start = position
        let n = try u32(field)
        guard range.contains(n) else {
            throw failure(field, "count \(n) outside \(range.lowerBound)...\(range.upperBound)", at: start)
        }
        guard Int(n) * minimumElementSize <= remaining else {
            throw failure(field, "count \(n) needs at least \(Int(n) * minimumElementSize) bytes, \(remaining) left", at: start)
        }
        return Int(n)
    }

    /// Throws unless every byte was consumed.
    func expectEnd() throws(ProtocolError) {
        guard remaining == 0 else {
            throw failure("end", "\(remaining) unexpected trailing bytes")
        }
    }
}
