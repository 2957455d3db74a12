import TokenfeedSystem

/// Either direction: an orderly end of the session. Payload: `0 u16 reason  2 u16 reserved`.
/// After sending or receiving it, a peer closes the connection.
public struct Goodbye: WireMessage, Hashable {
    public static let messageType = MessageType.goodbye

    /// Why the session ends.
    public enum Reason: UInt16, Sendable, Hashable, CaseIterable {
        /// The client is done (it may reconnect later with its last cursor).
        case done = 0
        /// The daemon served the last step of the curriculum (`tokens.train_steps`); no more batches exist.
        case endOfStream = 1
    }

    /// Why the session ends.
    public var reason: Reason

    /// Creates a Goodbye.
    public init(reason: Reason) { self.reason = reason }

    public func encodePayload(into bytes: inout [UInt8]) {
        bytes.appendLE(reason.rawValue)
        bytes.appendLE(UInt16(0))
    }

    /// Decodes a Goodbye payload. - Throws: `malformed_frame` for an unknown reason or reserved bits.
    public init(payload: UnsafeRawBufferPointer) throws(ProtocolError) {
        var r = ByteReader(payload, message: "Goodbye")
        let raw = try r.u16("reason")
        guard let reason = Reason(rawValue: raw) else { throw r.failure("reason", "unknown reason \(raw)", at: 0) }
        self.reason = reason
        try r.reserved(UInt16.self, "reserved")
        try r.expectEnd()
    }
}
