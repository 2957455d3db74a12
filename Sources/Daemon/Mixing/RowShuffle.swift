import TokenfeedSystem

/// A seeded shuffle of a dataset's rows that keeps random access: the dataset's `k`-th draw reads
/// row `rowIndex(k)`, a keyed bijection of the row indices that moves a row only within its block of
/// `span` consecutive rows (`⌊k / span⌋` is kept). Every row is still read exactly once per pass, a
/// prefix of whole blocks reads exactly the rows it would read unshuffled, and any draw is computed
/// directly — a 4-round Feistel network over the smallest power of four holding `span`, keyed by the
/// curriculum seed, the dataset's identity and the block, walked until it lands inside the span
/// (fewer than 4 steps on average). No allocation, no state.
public struct RowShuffle: Sendable, Hashable {
    /// Rows per block.
    public let span: UInt64
    /// The curriculum's seed.
    public let seed: UInt64
    /// Bits of one Feistel half: `4^halfBits ≥ span`.
    let halfBits: UInt64

    /// The largest span tokenfeed accepts: 2^24 rows.
    public static let maximumSpan = 1 << 24

    /// - Precondition: `2 ≤ span ≤ maximumSpan` (the curriculum loader checks it).
    public init(span: Int, seed: UInt64) {
        precondition(span >= 2 && span <= Self.maximumSpan, "shuffle span out of range")
        self.span = UInt64(span)
        self.seed = seed
        var bits: UInt64 = 1
        while (1 << (2 * bits)) < UInt64(span) { bits += 1 }
        halfBits = bits
    }

    /// The key of a dataset: a hash of its identity, computed once per dataset.
    public static func datasetKey(identity: String) -> UInt64 { FNV1a64.hash(identity) }

    /// The row the dataset's `k`-th draw reads.
    public func rowIndex(_ k: UInt64, datasetKey: UInt64) -> UInt64 {
        let block = k / span
        let key = StableHash.mix(seed ^ StableHash.mix(datasetKey ^ StableHash.mix(block)))
        var x = k - block * span
        repeat { x = permute(x, key: key) } while x >= span
        return block * span + x
    }

    /// The Feistel permutation of `[0, 4^halfBits)` under `key`.
    func permute(_ x: UInt64, key: UInt64) -> UInt64 {
        let mask: UInt64 = (1 << halfBits) - 1
        var left = x >> halfBits, right = x & mask
        for round: UInt64 in 0 ..< 4 {
            let f = StableHash.mix(key ^ (round &* 0x9E37_79B9_7F4A_7C15) ^ right) & mask
            (left, right) = (right, left ^ f)
        }
        return (left << halfBits) | right
    }
}
