/// One period of a stage's choice sequence: which of the stage's datasets each of its
/// sequences comes from, with the quota property, in exact integer arithmetic.
///
/// ## The rule (Tijdeman's chairman assignment, 1980)
/// A stage has `k` datasets with positive integer weights `W_d`, `Q = Σ W_d`, shares
/// `w_d = W_d / Q`. Let `δ = 1 / (2(k − 1))`. Before slot `n` (1-based), with `c_d` picks of
/// each dataset so far, the *eligible* datasets are those with `w_d·n − c_d ≥ δ`; among them
/// the one with the earliest deadline `(c_d + 1 − δ) / w_d` is picked (ties: a seeded rank).
///
/// **Bound.** After every prefix of `n` sequences, `|c_d − w_d·n| ≤ 1 − δ < 1` for every `d`.
///
/// *Proof sketch.* Read the `j`-th pick of `d` (j ≥ 0) as a unit job that may run in slot `n`
/// only if `j + 1 ≤ w_d·n + 1 − δ` (release `r_j = ⌈(j + δ)/w_d⌉`, else `c_d` would exceed
/// `w_d·n` by more than `1 − δ`) and must run by slot `D_j = ⌊(j + 1 − δ)/w_d⌋` (else `c_d`
/// would fall more than `1 − δ` below `w_d·n`). Eligibility is exactly "released", and the key
/// is exactly the deadline, so the rule is earliest-deadline-first over released jobs.
/// (1) A released job always exists: if none did, `c_d > w_d·n − δ` for all `d`; summing,
///     `n − 1 > n − kδ`, i.e. `kδ > 1`, but `kδ = k/(2k − 2) ≤ 1` for `k ≥ 2`.
/// (2) EDF misses no deadline if every window of slots `[a, b]` contains the windows
///     `[r_j, D_j]` of at most `b − a + 1` jobs: otherwise take the first missed deadline `D`
///     and the last slot `a − 1 < D` that ran a job with a deadline after `D`; every slot of
///     `[a, D]` ran a job released at or after `a` with deadline at most `D` (an earlier-released
///     one would have been picked in slot `a − 1`), and together with the missed job that is
///     `D − a + 2` jobs inside `[a, D]`.
/// (3) The counting condition of (2) holds for `δ = 1/(2(k − 1))`: this is Tijdeman's lemma
///     ("The chairman assignment problem", Discrete Math. 32 (1980) 323–330), who also shows
///     the constant is best possible. Neither a plain divisor method (the merge of the
///     progressions `(j + α)/w_d`, with no eligibility filter) nor Megatron's largest-deficit
///     greedy has a bound below 1: divisor methods violate quota (Balinski–Young), which is
///     why the filter is there and why random access uses periodicity instead of a closed form.
///
/// **Periodicity.** After `Q` picks the bound gives `|c_d − W_d| < 1`, so `c_d = W_d` for all
/// `d`: the state is the initial state again, and the rule (a function of the state) repeats.
/// So one period of `Q` slots (`Q ≤` ``Curriculum/maximumWeightDenominator``) is computed once
/// and every position is `(periods × W_d) + (picks in the partial period)`. The tests check the
/// bound over whole periods of SmolLM3's stages and of thousands of random weight vectors, in
/// exact integer arithmetic.
public struct StageSchedule: Sendable {
    /// Integer weight per local dataset (the stage's datasets, in the stage's order; zeros allowed).
    public let units: [UInt64]
    /// `Q = Σ units`: the period length in sequences.
    public let period: Int
    /// The local dataset of every slot of the period.
    let choices: [UInt16]
    /// Counts per local dataset before slot `c × stride`, for `c = 0 ... period / stride`.
    let checkpoints: [UInt32]
    static let stride = 1024

    /// Computes one period of the schedule for `units` (at least one positive), breaking
    /// deadline ties by a permutation seeded with `tieBreakSeed`.
    public init(units: [UInt64], tieBreakSeed: UInt64) {
        precondition(units.count <= Int(UInt16.max), "at most 65,535 datasets per stage")
        let total = units.reduce(0, +)
        precondition(total > 0 && total <= 1 << 32, "a stage needs positive weights with a period below 2^32")
        let q = Int(total)
        self.units = units
        self.period = q
        let k = units.count
        let positive = units.indices.filter { units[$0] > 0 }
        var rankGenerator = SplitMix64(seed: tieBreakSeed)
        let permutation = rankGenerator.permutation(k)
        var rank = [Int](repeating: 0, count: k)
        for (position, dataset) in permutation.enumerated() { rank[dataset] = position }

        var choices = [UInt16](repeating: 0, count: q)
        var checkpoints = [UInt32](repeating: 0, count: (q / Self.stride + 1) * k)
        var counts = [UInt64](repeating: 0, count: k)
        if positive.count == 1 {
            let only = UInt16(positive[0])
            for slot in 0..<q { choices[slot] = only }
            for c in 0...(q / Self.stride) { checkpoints[c * k + positive[0]] = UInt32(c * Self.stride) }
            counts[positive[0]] = UInt64(q)
        } else {
            let m = UInt128(2 * (positive.count - 1))
            let bigQ = UInt128(q)
            // release[d]: first slot (1-based) at which d's next pick is eligible;
            // key[d]: numerator of its deadline, m·c + m − 1 (the deadline is key·Q/(m·W)).
            func release(_ c: UInt64, _ w: UInt64) -> UInt64 {
                let numerator = bigQ * (m * UInt128(c) + 1)
                let denominator = m * UInt128(w)
                return UInt64((numerator + denominator - 1) / denominator)
            }
            var releases = [UInt64](repeating: .max, count: k)
            var keys = [UInt128](repeating: 0, count: k)
            // Datasets waiting for their release (earliest release first) and eligible datasets
            // (earliest deadline first, ties by rank): O(log k) per slot instead of a scan of all k.
            let releasedLater: (Int, Int) -> Bool = { a, b in
                releases[a] < releases[b] || (releases[a] == releases[b] && a < b)
            }
            let deadlineBefore: (Int, Int) -> Bool = { a, b in
                let lhs = keys[a] * UInt128(units[b])
                let rhs = keys[b] * UInt128(units[a])
                return lhs < rhs || (lhs == rhs && rank[a] < rank[b])
            }
            var waiting = IndexHeap(capacity: positive.count)
            var eligible = IndexHeap(capacity: positive.count)
            for d in positive {
                releases[d] = release(0, units[d])
                keys[d] = m - 1
                waiting.push(d, by: releasedLater)
            }
            for slot in 0..<q {
                if slot % Self.stride == 0 {
                    let base = (slot / Self.stride) * k
                    for d in 0..<k { checkpoints[base + d] = UInt32(counts[d]) }
                }
                let t = UInt64(slot + 1)
                while let d = waiting.first, releases[d] <= t {
                    _ = waiting.pop(by: releasedLater)
                    eligible.push(d, by: deadlineBefore)
                }
                guard let best = eligible.pop(by: deadlineBefore) else {
                    preconditionFailure("quota schedule: no eligible dataset (impossible for k ≥ 2)")
                }
                choices[slot] = UInt16(best)
                counts[best] += 1
                releases[best] = release(counts[best], units[best])
                keys[best] = m * UInt128(counts[best]) + m - 1
                waiting.push(best, by: releasedLater)
            }
            if q % Self.stride == 0 {
                let base = (q / Self.stride) * k
                for d in 0..<k { checkpoints[base + d] = UInt32(counts[d]) }
            }
        }
        precondition(counts == units, "quota schedule: a period must end with every dataset at its weight")
        self.choices = choices
        self.checkpoints = checkpoints
    }

    /// The number of local datasets.
    public var datasetCount: Int { units.count }

    /// The local dataset of slot `slot` (0-based, `< period`).
    @inline(__always)
    public func choice(at slot: Int) -> Int { Int(choices[slot]) }

    /// How many of the first `slot` slots of the period picked local dataset `local`.
    public func count(of local: Int, before slot: Int) -> UInt64 {
        precondition(slot >= 0 && slot <= period, "slot out of range")
        let c = slot / Self.stride
        var n = UInt64(checkpoints[c * units.count + local])
        var s = c * Self.stride
        let target = UInt16(local)
        while s < slot {
            if choices[s] == target { n += 1 }
            s += 1
        }
        return n
    }

    /// Adds, per local dataset, the picks of the first `slot` slots to `counts[map[local]]`.
    func addCounts(before slot: Int, times multiplier: UInt64 = 1, into counts: inout [UInt64], map: [Int]) {
        let c = slot / Self.stride
        var local = [UInt64](repeating: 0, count: units.count)
        for d in 0..<units.count { local[d] = UInt64(checkpoints[c * units.count + d]) }
        var s = c * Self.stride
        while s < slot {
            local[Int(choices[s])] += 1
            s += 1
        }
        for d in 0..<units.count { counts[map[d]] += local[d] * multiplier }
    }

    /// The slot of the period holding local dataset `local`'s pick number `occurrence`
    /// (0-based, `< units[local]`).
    public func slot(ofOccurrence occurrence: UInt64, of local: Int) -> Int {
        precondition(occurrence < units[local], "occurrence out of range")
        // The last checkpoint with at most `occurrence` picks of `local` before it.
        var low = 0, high = period / Self.stride
        while low < high {
            let mid = (low + high + 1) / 2
            if UInt64(checkpoints[mid * units.count + local]) <= occurrence { low = mid } else { high = mid - 1 }
        }
        var seen = UInt64(checkpoints[low * units.count + local])
        var s = low * Self.stride
        let target = UInt16(local)
        while true {
            if choices[s] == target {
                if seen == occurrence { return s }
                seen += 1
            }
            s += 1
        }
    }
}
