import Synchronization

/// How many bestfit rows each shard of each dataset packs into, shared by all the planners of a
/// ``GlobalStream`` so that a shard's rows are counted once per process, not once per planner.
///
/// A shard's row count depends only on its document lengths, the row length and the look-ahead
/// (groups never cross a shard), so it is the same in every epoch. Entries are filled lazily by
/// whichever planner needs them first; two planners may count the same shard at once and store the
/// same value, which is harmless because the count is a pure function of metadata.
///
/// Lock-free: each entry is an `Atomic<UInt64>` holding `rows + 1` (0 = not counted yet), stored
/// with release and loaded with acquire.
final class BestFitRowCache: @unchecked Sendable {
    // `@unchecked Sendable`: the only mutable state is the array of atomics, allocated once in init
    // and freed in deinit; every access to it is atomic.
    private let entries: UnsafeMutablePointer<Atomic<UInt64>>
    private let firstEntry: [Int]
    private let count: Int

    /// - Parameter shardCounts: how many shards each dataset has, in curriculum order.
    init(shardCounts: [Int]) {
        var first: [Int] = []
        var total = 0
        for n in shardCounts {
            first.append(total)
            total += n
        }
        firstEntry = first
        count = total
        entries = .allocate(capacity: max(1, total))
        for e in 0 ..< total { (entries + e).initialize(to: Atomic(0)) }
    }

    deinit {
        entries.deinitialize(count: count)
        entries.deallocate()
    }

    /// The rows shard `shard` of dataset `dataset` packs into, if some planner has counted them.
    func rows(dataset: Int, shard: Int) -> UInt64? {
        let value = entries[firstEntry[dataset] + shard].load(ordering: .acquiring)
        return value == 0 ? nil : value - 1
    }

    /// Records the rows of shard `shard` of dataset `dataset`.
    func store(rows: UInt64, dataset: Int, shard: Int) {
        entries[firstEntry[dataset] + shard].store(rows + 1, ordering: .releasing)
    }
}
