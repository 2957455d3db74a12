import TokenfeedSystem

/// A complete frame held by a `FrameDecoder`: valid until the next call on that decoder.
public struct Frame {
    /// The validated header.
    public let header: FrameHeader
    /// The whole frame, header included, starting at a 64-byte aligned address.
    public let bytes: UnsafeRawBufferPointer

    /// The payload bytes.
    public var payload: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[FrameHeader.size...]) }

    /// Decodes the frame into an owned message. - Throws: payload errors.
    public func message() throws(ProtocolError) -> Message {
        try Message.decode(header: header, payload: payload)
    }

    /// A zero-copy view of a Batch frame. - Throws: `unexpected_message` for other types, validation errors.
    public func batchView(expecting: BatchExpectation? = nil) throws(ProtocolError) -> BatchView {
        try BatchView(frame: bytes, expecting: expecting)
    }
}

/// Reassembles frames from a byte stream delivered in arbitrary chunks (partial headers, partial
/// payloads, several frames per chunk).
///
/// Each header is validated as soon as its 24 bytes are present (the magic as soon as 4 are), so
/// bad magic, version, type or an oversize length is rejected before any payload is buffered.
/// After a failure the decoder stays failed and rethrows the same error.
///
/// Two ways to feed it: `append` copies a chunk the caller already has; `receive` hands the caller
/// the exact free space the current frame still needs (read(2)/recv straight into it), so a
/// frame always starts at the 64-byte aligned start of the buffer and a Batch's token block is
/// 64-byte aligned in memory. Storage is allocated once and grows only to the largest frame seen.
public final class FrameDecoder {
    /// The limits headers are checked against; a client may lower `limits.batch` after the Welcome.
    public var limits: FrameLimits
    private var storage: UnsafeMutableRawPointer
    private var capacity: Int
    /// Bytes buffered, starting at `storage`.
    private var filled = 0
    /// Bytes at the start of storage belonging to a frame already returned by `nextFrame`.
    private var consumed = 0
    /// Offset of the first frame whose header has not been validated yet (scan position).
    private var scanned = 0
    private var failure: ProtocolError?

    /// Creates a decoder with `initialCapacity` bytes of storage (grown on demand up to the largest frame).
    public init(limits: FrameLimits = .protocolMaximum, initialCapacity: Int = 1 << 16) {
        self.limits = limits
        self.capacity = max(initialCapacity, 64)
        self.storage = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: BatchLayout.tokenAlignment)
    }

    deinit { storage.deallocate() }

    /// Bytes buffered and not yet returned as frames.
    public var bufferedBytes: Int { filled - consumed }

    /// Bytes still missing to complete the next frame (its header, or its payload once the header is
    /// known); 0 when a complete frame is buffered.
    public var bytesNeeded: Int {
        if failure != nil { return 0 }
        let available = filled - consumed
        if available >= FrameHeader.size, available >= frameLength(at: consumed) { return 0 }
        return missingBytes(from: consumed)
    }

    /// Copies `chunk` into the buffer and validates every header it completes.
    /// - Throws: `bad_magic`, `unsupported_version`, `unknown_message_type`, `malformed_frame`, `oversize_frame`.
    public func append(_ chunk: UnsafeRawBufferPointer) throws(ProtocolError) {
        if let failure { throw failure }
        compact()
        reserve(filled + chunk.count)
        if let base = chunk.baseAddress, chunk.count > 0 {
            (storage + filled).copyMemory(from: base, byteCount: chunk.count)
        }
        filled += chunk.count
        try scan()
    }

    /// Copies `chunk` into the buffer. See `append(_:)` for an unsafe buffer.
    public func append(_ chunk: [UInt8]) throws(ProtocolError) {
        try withBytes(of: chunk) { buffer throws(ProtocolError) in try append(buffer) }
    }

    /// Offers `body` the free space for exactly the bytes the current frame still needs (at least 1),
    /// and commits the count it returns; a return ≤ 0 (end of stream, error) commits nothing and is
    /// passed through. Typical use: `try decoder.receive { read(fd, $0.baseAddress, $0.count) }`.
    /// - Throws: header validation errors for the bytes received.
    public func receive(_ body: (UnsafeMutableRawBufferPointer) -> Int) throws(ProtocolError) -> Int {
        if let failure { throw failure }
        compact()
        let need = missingBytes(from: 0)
        reserve(filled + need)
        let n = body(UnsafeMutableRawBufferPointer(start: storage + filled, count: need))
        guard n > 0 else { return n }
        precondition(n <= need, "receive body reported \(n) bytes for a \(need)-byte buffer")
        filled += n
        try scan()
        return n
    }

    /// The next complete frame, or nil when more bytes are needed. The frame's bytes stay valid until
    /// the next call on this decoder.
    /// - Throws: the decoder's failure, if any.
    public func nextFrame() throws(ProtocolError) -> Frame? {
        if let failure { throw failure }
        compact()
        guard filled >= FrameHeader.size else { return nil }
        let header = try FrameHeader.decode(UnsafeRawBufferPointer(start: storage, count: FrameHeader.size), limits: limits)
        let length = Int(header.frameLength)
        guard filled >= length else { return nil }
        consumed = length
        return Frame(header: header, bytes: UnsafeRawBufferPointer(start: storage, count: length))
    }

    /// Drops the frame returned last and moves the bytes after it to the aligned start of storage.
    private func compact() {
        guard consumed > 0 else { return }
        let rest = filled - consumed
        if rest > 0 { storage.copyMemory(from: storage + consumed, byteCount: rest) }
        filled = rest
        scanned -= consumed
        consumed = 0
    }

    /// Validates every header that is complete and not yet validated.
    private func scan() throws(ProtocolError) {
        while true {
            let available = filled - scanned
            if available < 4 { return }
            let header = UnsafeRawBufferPointer(start: storage + scanned, count: min(available, FrameHeader.size))
            do throws(ProtocolError) {
                if available < FrameHeader.size {
                    try FrameHeader.checkMagic(header)
                    return
                }
                let h = try FrameHeader.decode(header, limits: limits)
                scanned += Int(h.frameLength)
            } catch {
                failure = error
                throw error
            }
            if scanned > filled { return }
        }
    }

    /// Bytes missing from the first frame at or after `start` that is not fully buffered (≥ 1).
    /// Only walks headers `scan` has validated.
    private func missingBytes(from start: Int) -> Int {
        var offset = start
        while true {
            let available = filled - offset
            if available < FrameHeader.size { return FrameHeader.size - available }
            let length = frameLength(at: offset)
            if available < length { return length - available }
            offset += length
        }
    }

    /// Whole length of the frame whose (validated) header starts at `offset`.
    private func frameLength(at offset: Int) -> Int {
        Int(UnsafeRawBufferPointer(start: storage + offset, count: FrameHeader.size).loadLE(16, as: UInt64.self)) + FrameHeader.size
    }

    /// Grows storage (keeping its 64-byte alignment) to hold at least `bytes`.
    private func reserve(_ bytes: Int) {
        guard bytes > capacity else { return }
        var newCapacity = capacity
        while newCapacity < bytes { newCapacity *= 2 }
        let newStorage = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: BatchLayout.tokenAlignment)
        newStorage.copyMemory(from: storage, byteCount: filled)
        storage.deallocate()
        storage = newStorage
        capacity = newCapacity
    }
}
