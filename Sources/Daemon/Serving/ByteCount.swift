/// A number of bytes as the daemon's options and config file write it: decimal digits with an
/// optional suffix `K`/`KiB` (×1024), `M`/`MiB` (×1024²) or `G`/`GiB` (×1024³) — `268435456`,
/// `256MiB`, `256M`. Nothing else is accepted (no spaces, no lower case, no fractions); a count too
/// large for `Int` is refused, not wrapped.
///
/// Its text form (``description``) is the largest suffix that divides it exactly, so it reads back as
/// the same count: `ByteCount(text: "\(count)") == count`.
public struct ByteCount: Sendable, Hashable, Comparable, CustomStringConvertible, LosslessStringConvertible {
    /// The count. Invariant: not negative.
    public let bytes: Int

    /// A count of `bytes` (not negative).
    public init(_ bytes: Int) {
        precondition(bytes >= 0, "a byte count is not negative: \(bytes)")
        self.bytes = bytes
    }

    /// The suffixes and their factors, longest spelling first (so `MiB` is not read as `M` + `iB`).
    private static let units: [(suffix: String, factor: Int)] = [
        ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10),
    ]

    /// Parses `text`; nil when it is not a byte count (see the type's description) or exceeds `Int.max`.
    public init?(_ text: String) {
        var digits = Substring(text)
        var factor = 1
        if let unit = Self.units.first(where: { text.hasSuffix($0.suffix) }) {
            digits = digits.dropLast(unit.suffix.count)
            factor = unit.factor
        }
        guard let n = Int(digits), n >= 0 else { return nil }
        let (value, overflow) = n.multipliedReportingOverflow(by: factor)
        guard !overflow else { return nil }
        self.bytes = value
    }

    public static func < (a: ByteCount, b: ByteCount) -> Bool { a.bytes < b.bytes }

    /// `256MiB`, `64KiB`, `3GiB`, or the plain number when no suffix divides it.
    public var description: String {
        for (suffix, factor) in Self.units where suffix.count == 3 && bytes != 0 && bytes % factor == 0 {
            return "\(bytes / factor)\(suffix)"
        }
        return "\(bytes)"
    }
}
