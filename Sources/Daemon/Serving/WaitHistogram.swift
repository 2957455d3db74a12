import CoreMetrics
import Synchronization
import TokenfeedShards
import TokenfeedSystem

/// Durations the writers record without a lock (relaxed atomics: a count and a nanosecond sum per
/// bucket), turned into a swift-metrics `Timer` — a swift-prometheus histogram — when the metrics are
/// read (``drain(into:)``).
///
/// Draining records, for each bucket, the observations since the last drain at their mean, spread so
/// that the integer values add up to the bucket's exact sum: a bucket's mean lies within its bounds,
/// so the histogram's bucket counts and its `_sum` are exact. A drain costs one histogram update per
/// wait since the previous one (at most one per batch sent).
final class WaitHistogram: @unchecked Sendable {
    /// Upper bounds of the buckets (nanoseconds, ascending); a last bucket takes everything above.
    let bounds: [UInt64]
    private let counts: UnsafeMutablePointer<Atomic<UInt64>>
    private let sums: UnsafeMutablePointer<Atomic<UInt64>>
    /// Counts and sums already handed to the timer, per bucket (taken by one drain at a time).
    private let drained: LockedValue<(counts: [UInt64], sums: [UInt64])>

    init(bounds: [Duration]) {
        self.bounds = bounds.map { UInt64($0.components.seconds) * 1_000_000_000 + UInt64($0.components.attoseconds / 1_000_000_000) }
        let slots = bounds.count + 1
        counts = .allocate(capacity: slots)
        sums = .allocate(capacity: slots)
        for i in 0 ..< slots {
            (counts + i).initialize(to: Atomic(0))
            (sums + i).initialize(to: Atomic(0))
        }
        drained = LockedValue(([UInt64](repeating: 0, count: slots), [UInt64](repeating: 0, count: slots)))
    }

    deinit {
        counts.deinitialize(count: bounds.count + 1)
        counts.deallocate()
        sums.deinitialize(count: bounds.count + 1)
        sums.deallocate()
    }

    /// Counts one wait of `nanoseconds` (no lock, no allocation).
    func record(nanoseconds: UInt64) {
        var i = 0
        while i < bounds.count, nanoseconds > bounds[i] { i += 1 }
        (counts + i).pointee.wrappingAdd(1, ordering: .relaxed)
        (sums + i).pointee.wrappingAdd(nanoseconds, ordering: .relaxed)
    }

    /// Hands the waits recorded since the last drain to `timer`.
    ///
    /// A wait being recorded while this runs may have its count read without its duration or the other
    /// way round (the two adds are relaxed): each value handed over is kept within its bucket's bounds,
    /// so bucket counts stay exact, and what the sum misses now is handed over with a later wait.
    func drain(into timer: CoreMetrics.Timer) {
        drained.withLock { drained in
            for i in 0 ... bounds.count {
                let count = (counts + i).pointee.load(ordering: .relaxed)
                let sum = (sums + i).pointee.load(ordering: .relaxed)
                let newCount = count &- drained.counts[i]
                guard newCount > 0, newCount <= count else { continue }
                let newSum = sum > drained.sums[i] ? sum - drained.sums[i] : 0
                let lowest: UInt64 = i == 0 ? 0 : bounds[i - 1] + 1
                let highest: UInt64 = i < bounds.count ? bounds[i] : UInt64(Int64.max)
                let mean = newSum / newCount
                let above = newSum % newCount   // this many get mean + 1, so that the values add up to newSum
                var handed: UInt64 = 0
                for k in 0 ..< newCount {
                    let value = min(max(mean + (k < above ? 1 : 0), lowest), highest)
                    timer.recordNanoseconds(Int64(clamping: value))
                    handed &+= value
                }
                drained.counts[i] = count
                drained.sums[i] &+= handed
            }
        }
    }
}
