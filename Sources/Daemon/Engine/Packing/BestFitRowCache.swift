import Dispatch
import Synchronization
import TokenfeedShards
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How many bestfit rows each shard of each dataset packs into, shared by all the planners of a
/// ``GlobalStream`` so that a shard's rows are counted once per process, not once per planner —
/// and, with a ``BestFitRowStore``, once per cache directory: counts are read from it and written
/// back to it.
///
/// A shard's row count depends only on its document lengths, the row length and the look-ahead
/// (groups never cross a shard), so it is the same in every epoch. Entries are filled lazily by
/// whichever planner needs them first, on all cores (``count(dataset:shards:)``), or all at once
/// (``countAll()``, which a planner calls on a far jump). Before a dataset's first count, its
/// persisted counts are loaded (``loadIfNeeded(dataset:)``); once all its shards are counted and any
/// had to be counted here, its file is rewritten (one thread does it).
///
/// Lock-free for the planners: each entry is an `Atomic<UInt64>`: 0 = not counted, 1 = being counted
/// by the thread that claimed it (compare-exchange from 0), `rows + 2` = counted (stored with release,
/// loaded with acquire), `UInt64.max` = its index could not be read (the error is kept in `failure`).
/// A planner that needs a shard another thread is counting or loading waits for that value; counting
/// either ends or fails, so the wait ends. Storing a count twice stores the
/// same value. The shard keys of the persisted files sit behind a lock, touched only when loading and
/// writing.
final class BestFitRowCache: @unchecked Sendable {
    // `@unchecked Sendable`: the mutable state is arrays of atomics allocated once in init and freed
    // in deinit, every access to them atomic; and `keys`, behind its lock.
    private let entries: UnsafeMutablePointer<Atomic<UInt64>>
    /// Per dataset: 0 = persisted counts not loaded, 1 = being loaded, 2 = loaded (or nothing to load).
    private let loadStates: UnsafeMutablePointer<Atomic<Int>>
    /// Per dataset: how many of its shards are counted; and `shards + 1` once its file is taken care of.
    private let countedShards: UnsafeMutablePointer<Atomic<Int>>
    /// Per dataset: whether the persisted file held every shard (no need to write it again).
    private let storeWasComplete: UnsafeMutablePointer<Atomic<Bool>>
    private let firstEntry: [Int]
    private let total: Int
    private let wholePassClaimed = Atomic<Bool>(false)
    private let loadedTotal = Atomic<Int>(0)
    private let countedTotal = Atomic<Int>(0)
    private let countedDocuments = Atomic<Int>(0)

    let folders: [DatasetFolder]
    let rowTokens: Int
    let lookahead: Int
    let store: BestFitRowStore?
    let report: @Sendable (String) -> Void
    /// Per dataset, once loaded: the key of each shard (nil where it could not be taken).
    private let keys: LockedValue<[[BestFitShardKey?]?]>
    /// The first shard error a count met (its entry holds `UInt64.max`).
    private let failure = LockedValue<ShardError?>(nil)
    private static let failed = UInt64.max

    /// - Parameters:
    ///   - folders: the datasets, in curriculum order.
    ///   - rowTokens: `R`, tokens in a row; `lookahead`: documents per group.
    ///   - store: where counts persist; nil to keep them in memory only.
    ///   - report: receives one line per problem with a persisted file (ignored, counted again) and
    ///     per file written.
    init(folders: [DatasetFolder], rowTokens: Int, lookahead: Int, store: BestFitRowStore? = nil,
         report: @escaping @Sendable (String) -> Void = { _ in }) {
        var first: [Int] = []
        var total = 0
        for folder in folders {
            first.append(total)
            total += folder.shards.count
        }
        self.firstEntry = first
        self.total = total
        self.folders = folders
        self.rowTokens = rowTokens
        self.lookahead = lookahead
        self.store = store
        self.report = report
        self.keys = LockedValue(Array(repeating: nil, count: folders.count))
        entries = .allocate(capacity: max(1, total))
        for e in 0 ..< total { (entries + e).initialize(to: Atomic(0)) }
        loadStates = .allocate(capacity: max(1, folders.count))
        countedShards = .allocate(capacity: max(1, folders.count))
        storeWasComplete = .allocate(capacity: max(1, folders.count))
        for d in 0 ..< folders.count {
            (loadStates + d).initialize(to: Atomic(store == nil ? 2 : 0))
            (countedShards + d).initialize(to: Atomic(0))
            (storeWasComplete + d).initialize(to: Atomic(false))
        }
    }

    deinit {
        entries.deinitialize(count: total)
        entries.deallocate()
        loadStates.deinitialize(count: folders.count)
        loadStates.deallocate()
        countedShards.deinitialize(count: folders.count)
        countedShards.deallocate()
        storeWasComplete.deinitialize(count: folders.count)
        storeWasComplete.deallocate()
    }

    /// The rows shard `shard` of dataset `dataset` packs into, if they have been counted.
    func rows(dataset: Int, shard: Int) -> UInt64? {
        let value = entries[firstEntry[dataset] + shard].load(ordering: .acquiring)
        return value < 2 || value == Self.failed ? nil : value - 2
    }

    /// Records the rows of shard `shard` of dataset `dataset` (counted by walking all its groups).
    func store(rows: UInt64, dataset: Int, shard: Int) {
        record(rows: rows, dataset: dataset, shard: shard)
    }

    /// How many shards were found in the cache directory and how many were counted, so far.
    var statistics: BestFitCountStatistics {
        BestFitCountStatistics(shards: total, shardsFromCache: loadedTotal.load(ordering: .relaxed),
                               shardsCounted: countedTotal.load(ordering: .relaxed),
                               documentsCounted: countedDocuments.load(ordering: .relaxed))
    }

    /// Counts the rows of those of `shards` not counted yet, in parallel on all cores (each shard by
    /// one thread, whichever claims it first), and returns once all of them are counted. Loads the
    /// dataset's persisted counts first. Metadata only.
    /// - Throws: `ShardError` when one of the shards' index pages cannot be read or is corrupt.
    func count(dataset: Int, shards: Range<Int>) throws(ShardError) {
        loadIfNeeded(dataset: dataset)
        let first = firstEntry[dataset]
        DispatchQueue.concurrentPerform(iterations: shards.count) { j in
            countIfUnclaimed(dataset: dataset, shard: shards.lowerBound + j, entry: first + shards.lowerBound + j)
        }
        for shard in shards { try waitFor(dataset: dataset, shard: shard) }
    }

    /// Counts every shard of every dataset not counted yet — loading the persisted counts of all
    /// datasets first, then counting what is missing as one parallel pass over all cores — and writes
    /// the datasets' files. Returns once every shard is counted.
    /// - Throws: `ShardError` when a shard's index pages cannot be read or are corrupt.
    func countAll() throws(ShardError) {
        DispatchQueue.concurrentPerform(iterations: folders.count) { d in loadIfNeeded(dataset: d) }
        var missing: [(dataset: Int, shard: Int)] = []
        for d in 0 ..< folders.count {
            for s in 0 ..< folders[d].shards.count where rows(dataset: d, shard: s) == nil { missing.append((d, s)) }
        }
        let pending = missing
        DispatchQueue.concurrentPerform(iterations: pending.count) { j in
            let (d, s) = pending[j]
            countIfUnclaimed(dataset: d, shard: s, entry: firstEntry[d] + s)
        }
        for (d, s) in missing { try waitFor(dataset: d, shard: s) }
    }

    /// ``countAll()``, unless a planner of this process has already called this: the pass a far jump
    /// starts, once per process (planners arriving during it count lazily and share its work).
    func countAllOnce() throws(ShardError) {
        guard !wholePassClaimed.exchange(true, ordering: .relaxed) else { return }
        try countAll()
    }

    /// Loads the persisted counts of dataset `dataset` when there is a store and they were not loaded
    /// yet: takes the key of each of its shards and keeps the counts whose key matches. A file that
    /// cannot be read or is not right is reported and ignored. Returns once loaded (another thread
    /// may be doing it).
    func loadIfNeeded(dataset d: Int) {
        if loadStates[d].load(ordering: .acquiring) == 2 { return }
        guard loadStates[d].compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged else {
            Self.wait(until: { loadStates[d].load(ordering: .acquiring) == 2 })     // another thread is loading it
            return
        }
        guard let store else {
            loadStates[d].store(2, ordering: .releasing)
            return
        }
        let folder = folders[d]
        var shardKeys: [BestFitShardKey?] = []
        var keyProblems: [String] = []
        for shard in folder.shards {
            do { shardKeys.append(try BestFitShardKey.of(shard)) } catch {
                shardKeys.append(nil)
                keyProblems.append(error.message)
            }
        }
        keys.withLock { $0[d] = shardKeys }
        for problem in keyProblems.prefix(3) { report("bestfit row cache: \(problem); its rows are counted, not cached") }
        let path = store.path(forDatasetFolder: folder.path)
        var found = 0
        do {
            if let persisted = try store.load(path: path) {
                for (s, key) in shardKeys.enumerated() {
                    guard let key, let rows = persisted[key] else { continue }
                    if entries[firstEntry[d] + s].compareExchange(expected: 0, desired: rows + 2, ordering: .releasing).exchanged {
                        found += 1
                        loadedTotal.add(1, ordering: .relaxed)
                        noteCounted(dataset: d, loaded: true)
                    }
                }
                if found < folder.shards.count {
                    report("bestfit row cache \(path): \(folder.shards.count - found) of \(folder.shards.count) shards of \(folder.path) are new or changed since it was written; counting them")
                }
            }
        } catch {
            report("bestfit row cache: ignored \(error.message); counting the rows again")
        }
        if found == folder.shards.count { storeWasComplete[d].store(true, ordering: .relaxed) }
        loadStates[d].store(2, ordering: .releasing)
    }

    // MARK: - Counting and recording

    /// Counts shard `shard` of dataset `dataset` if no thread has claimed it yet.
    private func countIfUnclaimed(dataset: Int, shard: Int, entry: Int) {
        guard entries[entry].compareExchange(expected: 0, desired: 1, ordering: .relaxed).exchanged else { return }
        var packer = BestFitPacker(rowTokens: rowTokens)
        let reader = folders[dataset].shards[shard]
        let rows: UInt64
        do { rows = try packer.countRows(reader, lookahead: lookahead) } catch {
            failure.withLock { $0 = $0 ?? error }
            entries[entry].store(Self.failed, ordering: .releasing)
            return
        }
        countedTotal.add(1, ordering: .relaxed)
        countedDocuments.add(reader.metadata.documentCount, ordering: .relaxed)
        record(rows: rows, dataset: dataset, shard: shard)
    }

    /// Waits until shard `shard` of dataset `dataset` is counted (by another thread).
    /// - Throws: `ShardError` when its count failed.
    private func waitFor(dataset: Int, shard: Int) throws(ShardError) {
        let entry = firstEntry[dataset] + shard
        Self.wait(until: { entries[entry].load(ordering: .acquiring) >= 2 })
        if entries[entry].load(ordering: .acquiring) == Self.failed {
            throw failure.withLock { $0 } ?? ShardError(path: folders[dataset].shards[shard].path, "bestfit: counting its rows failed")
        }
    }

    /// Returns once `done()` holds: yields, then sleeps 100 µs between checks.
    private static func wait(until done: () -> Bool) {
        var spins = 0
        while !done() {
            spins += 1
            if spins < 64 { sched_yield() } else { usleep(100) }
        }
    }

    /// Stores a count; the first store of an entry counts it for its dataset.
    private func record(rows: UInt64, dataset: Int, shard: Int) {
        let old = entries[firstEntry[dataset] + shard].exchange(rows + 2, ordering: .releasing)
        if old < 2 { noteCounted(dataset: dataset, loaded: false) }
    }

    /// One more shard of `dataset` is counted; the thread that counts its last one writes its file
    /// (unless every count came from that file).
    private func noteCounted(dataset d: Int, loaded: Bool) {
        let shards = folders[d].shards.count
        guard countedShards[d].add(1, ordering: .acquiringAndReleasing).newValue == shards, !loaded, let store else { return }
        if storeWasComplete[d].load(ordering: .relaxed) { return }
        guard let shardKeys = keys.withLock({ $0[d] }) else { return }
        var persisted: [(key: BestFitShardKey, rows: UInt64)] = []
        for (s, key) in shardKeys.enumerated() {
            if let key, let rows = rows(dataset: d, shard: s) { persisted.append((key, rows)) }
        }
        let path = store.path(forDatasetFolder: folders[d].path)
        do {
            try store.save(persisted, path: path)
            report("bestfit row cache: wrote \(path) (\(persisted.count) shards of \(folders[d].path))")
        } catch {
            report("bestfit row cache: cannot write \(error.message); the counts stay in memory")
        }
    }

    /// Shards to count at once when extending a count: as many as there are cores.
    static let batch: Int = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
}
