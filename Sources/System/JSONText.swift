/// JSON text for the tools' and the daemon's JSON output, written by hand so that keys keep a fixed
/// order and the same value always gives the same bytes (the offline and socket dumps must agree).
public enum JSONText {
    /// A JSON string literal for `value`: quotes, backslashes and control characters escaped.
    public static func string(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += "\\u" + Hex.padded(UInt16(scalar.value))
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
