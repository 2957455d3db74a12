/// Hashes and random numbers that are the same on every machine and every run (never Swift's
/// per-process seeded `Hasher`).
public enum StableHash {
    /// One SplitMix64 step from `value`: a bijective mix of 64 bits.
    public static func mix(_ value: UInt64) -> UInt64 { finalize(value &+ SplitMix64.increment) }

    /// SplitMix64's output function.
    static func finalize(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// Combines values into one seed, order-sensitive.
    public static func combine(_ values: UInt64...) -> UInt64 {
        var state: UInt64 = 0x7466_6565_6421_0001 // "tfeed!" + version
        for value in values { state = mix(state ^ mix(value)) }
        return state
    }
}

/// SplitMix64: a small, fast, fully specified pseudo-random generator.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// The golden-ratio increment of the state.
    static let increment: UInt64 = 0x9e37_79b9_7f4a_7c15

    public mutating func next() -> UInt64 {
        state &+= Self.increment
        return StableHash.finalize(state)
    }

    /// A uniform integer in `0..<bound` (Lemire's multiply-shift with rejection), the same on
    /// every platform (unlike the standard library's `random(in:using:)`, whose algorithm is
    /// not specified).
    public mutating func next(below bound: UInt64) -> UInt64 {
        precondition(bound > 0, "bound must be positive")
        var product = next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold { product = next().multipliedFullWidth(by: bound) }
        }
        return product.high
    }

    /// A permutation of `0..<count` by Fisher–Yates.
    public mutating func permutation(_ count: Int) -> [Int] {
        var result = Array(0..<count)
        var i = count - 1
        while i > 0 {
            let j = Int(next(below: UInt64(i + 1)))
            result.swapAt(i, j)
            i -= 1
        }
        return result
    }
}
