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
        let (body, shift) = split(text)
        guard let decimal = try? ExactDecimal.parse(body) else { return nil }
        return decimal.scaled(byPowerOfTen: shift)
    }

    /// True when `text` is a whole, non-negative token count too large for 64 bits (so a message
    /// can say "too large" rather than "not a count").
    public static func isTooLarge(_ text: String) -> Bool {
        let (body, shift) = split(text)
        do {
            let decimal = try ExactDecimal.parse(body)
            return decimal.exponent + shift >= 0 && decimal.scaled(byPowerOfTen: shift) == nil
        } catch {
            return error == .tooManyDigits
        }
    }

    /// The number's text and the power of ten of its suffix.
    static func split(_ text: String) -> (body: String, shift: Int) {
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
        return (body, shift)
    }
}
