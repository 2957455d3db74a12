import TokenfeedSystem

/// A protocol message with a fixed type that encodes to and decodes from a payload.
public protocol WireMessage: Sendable, Equatable {
    /// The frame type of this message.
    static var messageType: MessageType { get }
    /// Appends the payload bytes (not the header).
    func encodePayload(into bytes: inout [UInt8])
    /// Decodes and validates a payload.
    /// - Throws: `ProtocolError` (`malformed_frame` naming the field and its frame offset).
    init(payload: UnsafeRawBufferPointer) throws(ProtocolError)
}

extension WireMessage {
    /// Appends a whole frame (header and payload) to `bytes`.
    public func encodeFrame(into bytes: inout [UInt8], requestID: UInt32 = 0) {
        let start = bytes.count
        FrameHeader(type: Self.messageType, payloadLength: 0, requestID: requestID).append(to: &bytes)
        encodePayload(into: &bytes)
        let length = UInt64(bytes.count - start - FrameHeader.size)
        for i in 0..<8 { bytes[start + 16 + i] = UInt8(truncatingIfNeeded: length >> (8 * UInt64(i))) }
    }

    /// The whole frame (header and payload) as a new array.
    public func encodeFrame(requestID: UInt32 = 0) -> [UInt8] {
        var bytes: [UInt8] = []
        encodeFrame(into: &bytes, requestID: requestID)
        return bytes
    }

    /// Decodes a whole frame: validates the header (type must be this message's) and the payload.
    /// - Throws: `ProtocolError` from the header or payload; `unexpected_message` for another type.
    public init(frame: UnsafeRawBufferPointer, limits: FrameLimits = .protocolMaximum) throws(ProtocolError) {
        let header = try FrameHeader.decode(frame, limits: limits)
        guard header.type == Self.messageType else {
            throw ProtocolError(.unexpectedMessage, "expected a \(Self.messageType) frame, got \(header.type)")
        }
        guard UInt64(frame.count) == header.frameLength else {
            throw ProtocolError(.malformedFrame, "\(Self.messageType) frame: header says \(header.frameLength) bytes, buffer has \(frame.count)")
        }
        try self.init(payload: UnsafeRawBufferPointer(rebasing: frame[FrameHeader.size...]))
    }

    /// Decodes a whole frame held in an array. See `init(frame:limits:)`.
    public init(frame: [UInt8], limits: FrameLimits = .protocolMaximum) throws(ProtocolError) {
        self = try withBytes(of: frame) { buffer throws(ProtocolError) in try Self(frame: buffer, limits: limits) }
    }
}
