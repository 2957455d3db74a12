/// A protocol failure: a typed code and a human message naming the message, field and frame offset.
///
/// Decoders throw it for malformed input; the daemon sends it to the peer as an `Error` frame
/// (`ErrorMessage(self)`), and clients surface received `Error` frames as this type too.
public struct ProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, as sent on the wire.
    public var code: ErrorCode
    /// A sentence for a person, e.g. `Hello.world_size at offset 28: must be at least 1, got 0`.
    public var message: String
    /// Optional subject: a shard path for data errors, a field name for malformed frames; may be empty.
    public var detail: String

    /// Creates an error with a code, a message and an optional detail.
    public init(_ code: ErrorCode, _ message: String, detail: String = "") {
        self.code = code
        self.message = message
        self.detail = detail
    }

    public var description: String {
        detail.isEmpty ? "\(code.name) (\(code.rawValue)): \(message)"
            : "\(code.name) (\(code.rawValue)): \(message) [\(detail)]"
    }
}
