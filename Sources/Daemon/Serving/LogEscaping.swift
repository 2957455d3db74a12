import TokenfeedSystem

/// Text made safe for a log line (the log handler applies it to every message, key and value): every control character (C0 U+0000–U+001F, DEL
/// U+007F, C1 U+0080–U+009F) becomes `\u{XX}` and a backslash becomes `\\`, so a `job_id` or an
/// error message from a client can neither start a forged log line nor carry terminal escapes.
enum LogEscaping {
    /// `text` with control characters and backslashes escaped; other characters unchanged.
    static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            if scalar == "\\" {
                out += "\\\\"
            } else if needsEscape(scalar) {
                out += "\\u{" + Hex.padded(UInt8(scalar.value)) + "}"  // needsEscape: value ≤ 0x9F
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "\\" || scalar.value < 0x20 || (scalar.value >= 0x7F && scalar.value <= 0x9F)
    }
}
