import Dispatch
import Synchronization
import TokenfeedShards
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How many bestfit rows each shard of each dataset packs into, shared by all the planners of a
/// ``GlobalStream`` so that a shard's rows are counted once per process, not once per planner.
///
/// A shard's row count depends only on its document lengths, the row length and the look-ahead
/// (groups never cross a shard), so it is the same in every epoch. Entries are filled lazily by
/// whichever planner needs them first, on all cores (``count(dataset:shards:folder:rowTokens:lookahead:)``).
///
/// Lock-free: each entry is an `Atomic<UInt64>`: 0 = not counted, 1 = being counted by the thread
/// that claimed it (compare-exchange from 0), `rows + 2` = counted (stored with release, loaded with
/// acquire). A planner that needs a shard another thread is counting waits for that value; counting
/// is pure and cannot fail, so the wait ends. Storing a count twice stores the same value.
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

    /// The rows shard `shard` of dataset `dataset` packs into, if they have been counted.
    func rows(dataset: Int, shard: Int) -> UInt64? {
        let value = entries[firstEntry[dataset] + shard].load(ordering: .acquiring)
        return value < 2 ? nil : value - 2
    }

    /// Records the rows of shard `shard` of dataset `dataset`.
    func store(rows: UInt64, dataset: Int, shard: Int) {
        entries[firstEntry[dataset] + shard].store(rows + 2, ordering: .releasing)
    }

    /// Counts the rows of those of `shards` not counted yet, in parallel on all cores (each shard by
    /// one thread, whichever claims it first), and returns once all of them are counted. Metadata only.
    func count(dataset: Int, shards: Range<Int>, folder: DatasetFolder, rowTokens: Int, lookahead: Int) {
        let first = firstEntry[dataset]
        DispatchQueue.concurrentPerform(iterations: shards.count) { j in
            let shard = shards.lowerBound + j
            guard entries[first + shard].compareExchange(expected: 0, desired: 1, ordering: .relaxed).exchanged else { return }
            var packer = BestFitPacker(rowTokens: rowTokens)
            let rows = packer.countRows(folder.shards[shard].metadata, lookahead: lookahead)
            entries[first + shard].store(rows + 2, ordering: .releasing)
        }
        for shard in shards {
            var spins = 0
            while rows(dataset: dataset, shard: shard) == nil {     // another planner is counting it
                spins += 1
                if spins < 64 { sched_yield() } else { usleep(100) }
            }
        }
    }

    /// Shards to count at once when extending a count: as many as there are cores.
    static let batch: Int = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
}
