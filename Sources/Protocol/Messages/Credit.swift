import TokenfeedSystem

/// Client → daemon: permission for `count` more Batch frames (credit-based flow control).
///
/// The daemon keeps a per-session balance: Hello's `initial_credits` plus every Credit, minus one
/// per Batch sent; it sends a Batch only while the balance is positive. Payload: `0 u32 count` (≥ 1).
public struct Credit: WireMessage, Hashable {
    public static let messageType = MessageType.credit
    /// Additional batches granted; at least 1.
    public var count: UInt32

    /// Creates a Credit. - Precondition: `count ≥ 1`.
    public init(count: UInt32) {
        precondition(count >= 1, "a Credit grants at least one batch")
        self.count = count
    }

    public func encodePayload(into bytes: inout [UInt8]) { bytes.appendLE(count) }

    /// Decodes a Credit payload. - Throws: `malformed_frame` when the count is 0 or the size is not 4.
    public init(payload: UnsafeRawBufferPointer) throws(ProtocolError) {
        var r = ByteReader(payload, message: "Credit")
        count = try r.u32("count")
        guard count >= 1 else { throw r.failure("count", "must be at least 1, got 0", at: 0) }
        try r.expectEnd()
    }
}
