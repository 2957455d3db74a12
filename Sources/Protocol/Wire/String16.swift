import TokenfeedSystem

/// The wire's `str16`: a u16 byte length, then that many bytes of UTF-8.
extension Array where Element == UInt8 {
    /// Appends `value` as a `str16`.
    /// - Precondition: the UTF-8 form is at most `maxBytes` bytes (and at most 65,535).
    mutating func appendString16(_ value: String, maxBytes: Int, field: StaticString) {
        let utf8 = value.utf8
        precondition(utf8.count <= maxBytes && utf8.count <= 0xFFFF,
                     "\(field): \(utf8.count) UTF-8 bytes, at most \(maxBytes) allowed")
        appendLE(UInt16(utf8.count))
        append(contentsOf: utf8)
    }
}

extension String {
    /// The longest prefix whose UTF-8 form fits in `maxBytes`, cut at a character boundary (a text
    /// that must fit a `str16` field's limit).
    func utf8Prefix(maxBytes: Int) -> String {
        if utf8.count <= maxBytes { return self }
        var result = ""
        var used = 0
        for ch in self {
            let n = ch.utf8.count
            if used + n > maxBytes { break }
            result.append(ch)
            used += n
        }
        return result
    }
}
