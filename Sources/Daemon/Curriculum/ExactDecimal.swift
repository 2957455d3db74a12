/// A non-negative decimal number read exactly from text: `significand × 10^exponent`.
///
/// Weights and token counts are parsed this way rather than through `Double`, so that
/// `0.00005` is exactly 5·10⁻⁵ on every machine and mixing decisions never depend on rounding.
public struct ExactDecimal: Sendable, Hashable {
    /// The digits, as an integer.
    public var significand: UInt64
    /// The power of ten the digits are scaled by.
    public var exponent: Int

    public init(significand: UInt64, exponent: Int) {
        self.significand = significand
        self.exponent = exponent
    }

    /// Why a text is not an ``ExactDecimal``.
    public enum ParseError: Error, Sendable, Hashable {
        /// The text is not a number.
        case notANumber
        /// The number is below zero.
        case negative
        /// The number has more significant digits than 64 bits hold.
        case tooManyDigits
    }

    /// Parses `123`, `0.00005`, `1_000_000`, `1.0e-05`, `5E3`, `+2`.
    ///
    /// - Throws: ``ParseError/negative`` for a number below zero, ``ParseError/notANumber`` for
    ///   anything else that is not a decimal number, ``ParseError/tooManyDigits`` beyond 19 digits.
    public static func parse(_ text: String) throws(ParseError) -> ExactDecimal {
        var chars = Array(text.utf8)
        guard !chars.isEmpty else { throw .notANumber }
        if chars[0] == UInt8(ascii: "-") {
            chars.removeFirst()
            guard let rest = try? parse(String(decoding: chars, as: UTF8.self)) else { throw .notANumber }
            if rest.significand == 0 { return rest }
            throw .negative
        }
        if chars[0] == UInt8(ascii: "+") { chars.removeFirst() }
        var significand: UInt64 = 0
        var exponent = 0
        var digits = 0
        var seenPoint = false
        var index = 0
        var previousWasDigit = false
        while index < chars.count {
            let c = chars[index]
            if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
                let d = UInt64(c - UInt8(ascii: "0"))
                if significand == 0 && d == 0 {
                    if seenPoint { exponent -= 1 }
                } else {
                    let (m, o1) = significand.multipliedReportingOverflow(by: 10)
                    let (s, o2) = m.addingReportingOverflow(d)
                    if o1 || o2 { throw .tooManyDigits }
                    significand = s
                    if seenPoint { exponent -= 1 }
                }
                digits += 1
                previousWasDigit = true
            } else if c == UInt8(ascii: "_") {
                guard previousWasDigit, index + 1 < chars.count,
                      chars[index + 1] >= UInt8(ascii: "0"), chars[index + 1] <= UInt8(ascii: "9") else { throw .notANumber }
                previousWasDigit = false
            } else if c == UInt8(ascii: ".") {
                if seenPoint { throw .notANumber }
                seenPoint = true
                previousWasDigit = false
            } else {
                break
            }
            index += 1
        }
        guard digits > 0 else { throw .notANumber }
        if index < chars.count {
            guard chars[index] == UInt8(ascii: "e") || chars[index] == UInt8(ascii: "E") else { throw .notANumber }
            index += 1
            var negative = false
            if index < chars.count, chars[index] == UInt8(ascii: "-") || chars[index] == UInt8(ascii: "+") {
                negative = chars[index] == UInt8(ascii: "-")
                index += 1
            }
            var value = 0
            var expDigits = 0
            while index < chars.count, chars[index] >= UInt8(ascii: "0"), chars[index] <= UInt8(ascii: "9") {
                value = value * 10 + Int(chars[index] - UInt8(ascii: "0"))
                if value > 400 { throw .tooManyDigits }
                expDigits += 1
                index += 1
            }
            guard expDigits > 0, index == chars.count else { throw .notANumber }
            exponent += negative ? -value : value
        }
        if significand == 0 { return ExactDecimal(significand: 0, exponent: 0) }
        // Normalise: no trailing zeros in the significand.
        while significand % 10 == 0 {
            significand /= 10
            exponent += 1
        }
        return ExactDecimal(significand: significand, exponent: exponent)
    }

    /// The value as an integer, or nil if it has a fractional part or exceeds `UInt64`.
    public var integerValue: UInt64? {
        if exponent < 0 { return nil }
        var value = significand
        for _ in 0..<exponent {
            let (m, o) = value.multipliedReportingOverflow(by: 10)
            if o { return nil }
            value = m
        }
        return value
    }

    /// The value multiplied by `10^shift` as an integer, or nil on overflow or a fraction left.
    public func scaled(byPowerOfTen shift: Int) -> UInt64? {
        ExactDecimal(significand: significand, exponent: exponent + shift).integerValue
    }

    /// The nearest `Double` (for display only).
    public var doubleValue: Double {
        var value = Double(significand)
        if exponent >= 0 {
            for _ in 0..<exponent { value *= 10 }
        } else {
            for _ in 0..<(-exponent) { value /= 10 }
        }
        return value
    }
}
