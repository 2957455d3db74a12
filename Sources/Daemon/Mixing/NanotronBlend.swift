/// nanotron's blend of one stage, bit for bit: which dataset its blended sample `j` comes from and
/// that dataset's sample index — Megatron's greedy "largest error first" as nanotron's
/// `BlendableDataset` builds it (issue 10.3; the building block of `--order nanotron`).
///
/// - weights are the float64 values written in the file, normalised by their sum as numpy computes
///   it (pairwise summation, ``numpySum(_:)``; a sequential sum changes thousands of SmolLM3's
///   assignments), then divided one by one;
/// - sample `j` goes to the first dataset with the strictly largest error `w·max(j, 1) − count`,
///   computed in IEEE double, the product rounded before the subtraction (no fused multiply-add);
/// - random access: the per-dataset counts before every multiple of ``checkpointInterval`` are kept
///   (computed as far as asked, once), so sample `j` costs at most one interval of greedy steps.
///   They depend only on the weights and the interval, so they can be stored and given back to a
///   later blend (``storedCounts``, ``adopt(storedCounts:)``; the engine's `NanotronBlendStore`
///   keeps them in a cache directory).
///
/// Not thread-safe; one per consumer.
public struct NanotronBlend: Sendable {
    /// The normalised weights.
    public let weights: [Double]
    /// Samples between stored counts: 2^20, as nanotron's caches.
    public let checkpointInterval: UInt64
    /// `checkpoints[c]`: the counts of every dataset before sample `c × checkpointInterval`.
    private var checkpoints: [[UInt64]]
    /// How many checkpoints this blend computed with greedy steps (not adopted).
    public private(set) var checkpointsComputed = 0
    /// The version of the greedy rule and weight normalisation the stored counts come from; part of
    /// a stored file's key, raised whenever either changes.
    public static let algorithmVersion: UInt16 = 1

    /// - Parameters:
    ///   - written: the stage's weights as the file writes them (float64), at least one positive.
    ///   - checkpointInterval: samples between stored counts (tests use small ones).
    public init(written: [Double], checkpointInterval: UInt64 = 1 << 20) {
        precondition(!written.isEmpty && checkpointInterval > 0, "a blend needs datasets and an interval")
        let sum = Self.numpySum(written)
        weights = written.map { $0 / sum }
        self.checkpointInterval = checkpointInterval
        checkpoints = [[UInt64](repeating: 0, count: written.count)]
    }

    /// The counts stored so far: `storedCounts[c]` holds every dataset's count before sample
    /// `c × checkpointInterval` (`storedCounts[0]` is all zeros).
    public var storedCounts: [[UInt64]] { checkpoints }

    /// Takes `counts` (as ``storedCounts`` gives them, from a blend of the same weights and
    /// interval) as this blend's stored counts when they reach further than the ones it has.
    /// - Returns: false, changing nothing, when they are not such counts (``problem(withStoredCounts:)``)
    ///   or do not reach further.
    @discardableResult
    public mutating func adopt(storedCounts counts: [[UInt64]]) -> Bool {
        guard counts.count > checkpoints.count, problem(withStoredCounts: counts) == nil else { return false }
        checkpoints = counts
        return true
    }

    /// Why `counts` cannot be this blend's stored counts, nil when they can: each row holds one
    /// count per dataset, the first is all zeros, each dataset's count never decreases, and row `c`
    /// sums to `c × checkpointInterval` (every sample goes to exactly one dataset). Cheap checks that
    /// any damage which a checksum missed would have to get past; they do not recompute the greedy rule.
    public func problem(withStoredCounts counts: [[UInt64]]) -> String? {
        let n = weights.count
        guard let first = counts.first, first.count == n, first.allSatisfy({ $0 == 0 }) else {
            return "the first stored counts are not \(n) zeros"
        }
        for c in 1 ..< counts.count {
            let row = counts[c], previous = counts[c - 1]
            guard row.count == n else { return "stored counts \(c) hold \(row.count) datasets, not \(n)" }
            var sum: UInt64 = 0
            for d in 0 ..< n {
                guard row[d] >= previous[d] else { return "stored counts \(c): dataset \(d) goes down from \(previous[d]) to \(row[d])" }
                let (total, overflow) = sum.addingReportingOverflow(row[d])
                guard !overflow else { return "stored counts \(c) overflow" }
                sum = total
            }
            let (expected, overflow) = UInt64(c).multipliedReportingOverflow(by: checkpointInterval)
            guard !overflow, sum == expected else { return "stored counts \(c) sum to \(sum), not \(UInt64(c)) × \(checkpointInterval)" }
        }
        return nil
    }

    /// The dataset of blended sample `j` and its sample index within that dataset (how many earlier
    /// samples of the stage came from it).
    public mutating func source(ofSample j: UInt64) -> (dataset: Int, sample: UInt64) {
        var counts = countsAtCheckpoint(before: j)
        var position = (j / checkpointInterval) * checkpointInterval
        while true {
            let chosen = choose(at: position, counts: counts)
            if position == j { return (chosen, counts[chosen]) }
            counts[chosen] += 1
            position += 1
        }
    }

    /// The datasets of the blended samples in `range`, in order: one greedy step each after the
    /// checkpoint before `range.lowerBound`.
    public mutating func datasets(of range: Range<UInt64>) -> [Int] {
        var counts = counts(beforeSample: range.lowerBound)
        var out: [Int] = []
        out.reserveCapacity(range.count)
        for position in range {
            let chosen = choose(at: position, counts: counts)
            out.append(chosen)
            counts[chosen] += 1
        }
        return out
    }

    /// How many of the stage's samples before `j` came from each dataset.
    public mutating func counts(beforeSample j: UInt64) -> [UInt64] {
        var counts = countsAtCheckpoint(before: j)
        var position = (j / checkpointInterval) * checkpointInterval
        while position < j {
            counts[choose(at: position, counts: counts)] += 1
            position += 1
        }
        return counts
    }

    /// The greedy choice at sample `j` given the counts before it: the first strictly largest error.
    ///
    /// The loop is the hot part of building a stage (10⁹ steps for SmolLM3), so it reads the arrays
    /// unchecked; Swift never contracts `w·x − c` into a fused multiply-add (it sets no `contract`
    /// flag), so the product is rounded to double before the subtraction, as nanotron's compiled helper does.
    func choose(at j: UInt64, counts: [UInt64]) -> Int {
        let x = Double(max(j, 1))
        return weights.withUnsafeBufferPointer { w in
            counts.withUnsafeBufferPointer { c in
                var best = 0
                var bestError = w[0] * x - Double(c[0])
                for d in 1 ..< w.count {
                    let e = w[d] * x - Double(c[d])
                    if e > bestError { best = d; bestError = e }
                }
                return best
            }
        }
    }

    /// The stored counts at the checkpoint at or before `j`, computing the missing checkpoints.
    private mutating func countsAtCheckpoint(before j: UInt64) -> [UInt64] {
        let wanted = Int(j / checkpointInterval)
        while checkpoints.count <= wanted {
            var counts = checkpoints[checkpoints.count - 1]
            let start = UInt64(checkpoints.count - 1) * checkpointInterval
            for position in start ..< start + checkpointInterval {
                counts[choose(at: position, counts: counts)] += 1
            }
            checkpoints.append(counts)
            checkpointsComputed += 1
        }
        return checkpoints[wanted]
    }

    /// The sum numpy's `np.sum` gives for a contiguous float64 array: pairwise summation, blocks of
    /// at most 128 summed with eight accumulators, longer arrays split in halves rounded down to a
    /// multiple of 8.
    public static func numpySum(_ values: [Double]) -> Double {
        values.withUnsafeBufferPointer { pairwise($0[...]) }
    }

    private static func pairwise(_ a: Slice<UnsafeBufferPointer<Double>>) -> Double {
        let n = a.count, base = a.startIndex
        if n < 8 {
            var sum = 0.0
            for i in a.indices { sum += a[i] }
            return sum
        }
        if n <= 128 {
            var r = (0 ..< 8).map { a[base + $0] }
            var i = 8
            while i < n - n % 8 {
                for k in 0 ..< 8 { r[k] += a[base + i + k] }
                i += 8
            }
            var sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            while i < n { sum += a[base + i]; i += 1 }
            return sum
        }
        var half = n / 2
        half -= half % 8
        return pairwise(a[base ..< base + half]) + pairwise(a[(base + half)...])
    }
}
