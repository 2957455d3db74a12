/// Token counts written for people: `8T`, `9.5T`, `500M`, `1_000_000`, `2.5e9`.
///
/// Suffixes are decimal: `K` = 10³, `M` = 10⁶, `B` or `G` = 10⁹, `T` = 10¹² (upper or lower
/// case). The result must be a whole number of tokens.
public enum TokenQuantity {
    /// Parses a token count.
    ///
    /// - Returns: the count, or nil when the text is not a whole, non-negative number of tokens
    ///   that fits in 64 bits.
    public static func parse(_ text: String) -> UInt64? {
        var body = text
        var shift = 0
        if let last = body.last {
            switch last {
            case "K", "k": shift = 3
            case "M", "m": shift = 6
            case "B", "b", "G", "g": shift = 9
            case "T", "t": shift = 12
            default: break
            }
            if shift > 0 { body.removeLast() }
        }
        guard let decimal = try? ExactDecimal.parse(body) else { return nil }
        return decimal.scaled(byPowerOfTen: shift)
    }
}
