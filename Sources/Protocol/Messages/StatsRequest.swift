import TokenfeedSystem

/// Client → daemon: asks for a Stats frame. Allowed as the first frame of a connection (a stats-only
/// client sends no Hello) and at any time during a session.
///
/// Payload: empty, or `0 u32 flags` (docs/PROTOCOL.md, "StatsRequest"). Flag bit 0 (`prometheus`)
/// asks for the daemon's metrics in the Prometheus text format as well (``Stats/prometheusText``);
/// the other bits are reserved and must be 0. A request without flags is sent empty, as before.
public struct StatsRequest: WireMessage, Hashable {
    public static let messageType = MessageType.statsRequest
    /// The `prometheus` flag bit.
    public static let prometheusFlag: UInt32 = 1

    /// Whether the answer carries the Prometheus text.
    public var prometheus: Bool

    /// Creates a StatsRequest.
    public init(prometheus: Bool = false) { self.prometheus = prometheus }

    public func encodePayload(into bytes: inout [UInt8]) {
        if prometheus { bytes.appendLE(Self.prometheusFlag) }
    }

    /// Decodes the payload (empty, or four bytes of flags).
    /// - Throws: `malformed_frame` naming `flags` for a payload of another size, flags 0 (sent empty
    ///   instead, so that every request has one encoding) or a reserved bit set.
    public init(payload: UnsafeRawBufferPointer) throws(ProtocolError) {
        var r = ByteReader(payload, message: "StatsRequest")
        guard payload.count != 0 else {
            prometheus = false
            return
        }
        guard payload.count == 4 else { throw r.failure("flags", "the payload is empty or 4 bytes of flags, got \(payload.count) bytes") }
        let flags = try r.u32("flags")
        guard flags & ~Self.prometheusFlag == 0 else {
            throw r.failure("flags", "reserved bits set: 0x\(String(flags & ~Self.prometheusFlag, radix: 16))", at: 0)
        }
        guard flags != 0 else { throw r.failure("flags", "0: a StatsRequest without flags is sent empty", at: 0) }
        prometheus = flags & Self.prometheusFlag != 0
        try r.expectEnd()
    }
}
