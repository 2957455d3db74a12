/// Hexadecimal text of integers and bytes, the one formatter the daemon's messages, file names,
/// digests and escapes use.
public enum Hex {
    /// `value` as hex digits zero-padded to its type's full width (two a byte): `padded(UInt32(0xbeef))`
    /// is "0000beef". Lowercase unless `uppercase`.
    public static func padded<T: FixedWidthInteger & UnsignedInteger>(_ value: T, uppercase: Bool = false) -> String {
        let digits = String(value, radix: 16, uppercase: uppercase)
        let width = T.bitWidth / 4
        return String(repeating: "0", count: width - digits.count) + digits
    }

    /// Each byte as two lowercase digits, joined by `separator`: `bytes([0x54, 0x4b], separator: " ")`
    /// is "54 4b".
    public static func bytes(_ bytes: some Sequence<UInt8>, separator: String = "") -> String {
        bytes.map { padded($0) }.joined(separator: separator)
    }
}
