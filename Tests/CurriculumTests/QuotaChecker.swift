import TokenfeedCurriculum
import TokenfeedMixing

/// Checks the quota property of one stage's choice sequence as it is fed pick by pick, in exact
/// integer arithmetic: after every prefix of n picks, `|Q·c_d − W_d·n| ≤ bound` for every d.
///
/// `e_d(n) = W_d·n − Q·c_d(n)` rises by `W_d` on every pick of another dataset and falls by
/// `Q − W_d` on a pick of d, so its maximum over time is reached just before a pick of d (or at
/// the end) and its minimum just after one: checking the picked dataset on each pick, and all
/// datasets at the end, checks every dataset after every prefix.
struct QuotaChecker {
    let units: [Int64]
    let q: Int64
    /// The tolerated `|Q·c − W·n|`, scaled by `scale` (so fractions stay integers).
    let boundNumerator: Int64
    let scale: Int64
    var counts: [Int64]
    var n: Int64 = 0
    /// The largest `|c_d − w_d·n|` seen, as a fraction of `Q`.
    var worst: Int64 = 0
    var violations = 0

    /// A checker for Tijdeman's bound `1 − 1/(2(k−1))` (k = positive weights), or for the plain
    /// bound 1 when `tijdeman` is false.
    init(units: [UInt64], tijdeman: Bool = true) {
        self.units = units.map { Int64($0) }
        q = Int64(units.reduce(0, +))
        let k = Int64(units.filter { $0 > 0 }.count)
        if tijdeman && k >= 2 {
            scale = 2 * (k - 1)
            boundNumerator = (2 * k - 3) * q
        } else {
            scale = 1
            boundNumerator = q
        }
        counts = [Int64](repeating: 0, count: units.count)
    }

    mutating func record(_ d: Int) {
        let before = units[d] * n - q * counts[d]      // e_d(n), about to fall
        check(before)
        counts[d] += 1
        n += 1
        check(units[d] * n - q * counts[d])
    }

    mutating func finish() {
        for d in units.indices { check(units[d] * n - q * counts[d]) }
    }

    private mutating func check(_ e: Int64) {
        let magnitude = abs(e)
        worst = max(worst, magnitude)
        if magnitude * scale > boundNumerator { violations += 1 }
    }

    /// The worst deviation in sequences.
    var worstDeviation: Double { Double(worst) / Double(q) }
}
