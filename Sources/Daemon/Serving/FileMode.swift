/// Permission bits of a file the daemon creates (`--socket-mode`, `socket_mode`), written in octal:
/// `660`, `0660` or `0o660`, at most `0777` (no set-id or sticky bits).
public struct FileMode: RawRepresentable, Sendable, Hashable, CustomStringConvertible, LosslessStringConvertible,
                        ExpressibleByIntegerLiteral {
    /// The bits. Invariant: within 0...0o777.
    public let rawValue: UInt32

    /// The mode `rawValue`, or nil beyond 0o777.
    public init?(rawValue: UInt32) {
        guard rawValue <= 0o777 else { return nil }
        self.rawValue = rawValue
    }

    /// A mode written in the source (`0o660`). - Precondition: within 0...0o777.
    public init(integerLiteral value: UInt32) {
        precondition(value <= 0o777, "a file mode is within 0...0o777: \(String(value, radix: 8))")
        self.rawValue = value
    }

    /// Parses octal text (`660`, `0660`, `0o660`); nil for anything else or beyond 0777.
    public init?(_ text: String) {
        var digits = Substring(text)
        if digits.hasPrefix("0o") { digits = digits.dropFirst(2) }
        guard !digits.isEmpty, let bits = UInt32(digits, radix: 8) else { return nil }
        self.init(rawValue: bits)
    }

    /// `0660`.
    public var description: String { "0" + String(rawValue, radix: 8) }
}
