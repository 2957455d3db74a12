/// Bytes per token on the wire: 2 (u16, vocabularies up to 65,536) or 4 (u32).
public enum TokenWidth: UInt8, Sendable, Hashable, CaseIterable {
    case u16 = 2
    case u32 = 4

    /// Bytes per token.
    public var bytes: Int { Int(rawValue) }
}
