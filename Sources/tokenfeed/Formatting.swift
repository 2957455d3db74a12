/// Number formatting shared by the commands' human output.

/// `8139571200000` → `8,139,571,200,000`.
func grouped(_ value: UInt64) -> String {
    let digits = Array(String(value))
    var out = ""
    for (i, ch) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
        out.append(ch)
    }
    return out
}
