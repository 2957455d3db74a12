import TokenfeedSystem

/// Any protocol message: decode a frame without knowing its type in advance.
public enum Message: Sendable, Hashable {
    case hello(Hello)
    case welcome(Welcome)
    case credit(Credit)
    case batch(Batch)
    case statsRequest(StatsRequest)
    case stats(Stats)
    case error(ErrorMessage)
    case goodbye(Goodbye)

    /// The message's frame type.
    public var type: MessageType {
        switch self {
        case .hello: .hello
        case .welcome: .welcome
        case .credit: .credit
        case .batch: .batch
        case .statsRequest: .statsRequest
        case .stats: .stats
        case .error: .error
        case .goodbye: .goodbye
        }
    }

    /// Decodes the payload of a frame whose header was already validated.
    /// - Throws: `ProtocolError` naming the field and offset.
    public static func decode(header: FrameHeader, payload: UnsafeRawBufferPointer) throws(ProtocolError) -> Message {
        guard UInt64(payload.count) == header.payloadLength else {
            throw ProtocolError(.malformedFrame, "\(header.type) frame: header says \(header.payloadLength) payload bytes, got \(payload.count)")
        }
        switch header.type {
        case .hello: return .hello(try Hello(payload: payload))
        case .welcome: return .welcome(try Welcome(payload: payload))
        case .credit: return .credit(try Credit(payload: payload))
        case .batch: return .batch(try Batch(payload: payload))
        case .statsRequest: return .statsRequest(try StatsRequest(payload: payload))
        case .stats: return .stats(try Stats(payload: payload))
        case .error: return .error(try ErrorMessage(payload: payload))
        case .goodbye: return .goodbye(try Goodbye(payload: payload))
        }
    }

    /// Decodes a whole frame (header and payload, nothing more).
    /// - Throws: header errors (`bad_magic`, `unsupported_version`, …) and payload errors.
    public static func decode(frame: UnsafeRawBufferPointer, limits: FrameLimits = .protocolMaximum) throws(ProtocolError) -> (header: FrameHeader, message: Message) {
        let header = try FrameHeader.decode(frame, limits: limits)
        guard UInt64(frame.count) == header.frameLength else {
            throw ProtocolError(.malformedFrame, "\(header.type) frame: header says \(header.frameLength) bytes, buffer has \(frame.count)")
        }
        return (header, try decode(header: header, payload: UnsafeRawBufferPointer(rebasing: frame[FrameHeader.size...])))
    }

    /// Decodes a whole frame held in an array. See `decode(frame:limits:)`.
    public static func decode(frame: [UInt8], limits: FrameLimits = .protocolMaximum) throws(ProtocolError) -> (header: FrameHeader, message: Message) {
        try withBytes(of: frame) { buffer throws(ProtocolError) in try decode(frame: buffer, limits: limits) }
    }

    /// Appends the whole frame to `bytes`.
    public func encodeFrame(into bytes: inout [UInt8], requestID: UInt32 = 0) {
        switch self {
        case .hello(let m): m.encodeFrame(into: &bytes, requestID: requestID)
        case .welcome(let m): m.encodeFrame(into: &bytes, requestID: requestID)
        case .credit(let m): m.encodeFrame(into: &bytes, requestID: requestID)
        case .batch(let m): m.encodeFrame(into: &bytes, requestID: requestID)
        case .statsRequest(let m): m.encodeFrame(into: &bytes, requestID: requestID)
        case .stats(let m): m.encodeFrame(into: &bytes, requestID: requestID)
        case .error(let m): m.encodeFrame(into: &bytes, requestID: requestID)
        case .goodbye(let m): m.encodeFrame(into: &bytes, requestID: requestID)
        }
    }

    /// The whole frame as a new array.
    public func encodeFrame(requestID: UInt32 = 0) -> [UInt8] {
        var bytes: [UInt8] = []
        encodeFrame(into: &bytes, requestID: requestID)
        return bytes
    }
}
