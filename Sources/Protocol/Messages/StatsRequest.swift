/// Client → daemon: asks for a Stats frame. Empty payload. Allowed as the first frame of a
/// connection (a stats-only client sends no Hello) and at any time during a session.
public struct StatsRequest: WireMessage, Hashable {
    public static let messageType = MessageType.statsRequest

    /// Creates a StatsRequest.
    public init() {}

    public func encodePayload(into bytes: inout [UInt8]) {}

    /// Decodes the (empty) payload. - Throws: `malformed_frame` if any byte is present.
    public init(payload: UnsafeRawBufferPointer) throws(ProtocolError) {
        try ByteReader(payload, message: "StatsRequest").expectEnd()
    }
}
