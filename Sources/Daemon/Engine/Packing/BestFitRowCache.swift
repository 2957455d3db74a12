import Dispatch
import Synchronization
import TokenfeedShards
import TokenfeedSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
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
/// by the thread that claimed it (compare-exchange from 0), `UInt64.max − 1` = being counted by the
/// background pass (``countInBackground(dataset:shard:)``), `rows + 2` = counted (stored with release,
/// loaded with acquire), `UInt64.max` = its index could not be read (the error is kept in `failure`).
/// A planner that needs a shard another planner is counting or loading waits for that value; counting
/// either ends or fails, so the wait ends. A planner never waits for the background pass, whose
/// threads run at the lowest priority: it takes the shard over (compare-exchange to 1) and counts it
/// itself; the background thread then drops its own count. Storing a count twice stores the
/// same value. The shard keys of the persisted files sit behind a lock, touched only when loading and
/// writing.
///
/// Each shard also has ``BestFitCheckpoints`` (the rows before every K-th group), taken while its
/// rows are counted: ``checkpoints(dataset:shard:)`` gives them to a planner entering the shard, from
/// a small in-memory cache of the shards in use, from the counts of this process not written yet, or
/// from the dataset's file (one read, checked on its own) — and, when none has them, by packing the
/// shard again. A checkpoint record found damaged is reported, recomputed, and its file rewritten.
final class BestFitRowCache: @unchecked Sendable {
    // `@unchecked Sendable`: the mutable state is arrays of atomics allocated once in init and freed
    // in deinit, every access to them atomic; `persisted`, `pending`, `recent` and the file writes,
    // behind their locks.
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
    /// K: the groups between two checkpoints of a shard.
    let groupsPerCheckpoint: Int
    let report: @Sendable (String) -> Void
    /// Per dataset, once loaded: its file, each shard's key (nil where it could not be taken) and
    /// the offset of its checkpoint record in the file (0 for none).
    private let persisted: LockedValue<[PersistedDataset?]>
    /// Per dataset: checkpoints taken in this process and not yet in its file (with a store only).
    private let pending: LockedValue<[[Int: [UInt64]]]>
    /// The checkpoints of the shards planners used last.
    private let recent = LockedValue<RecentCheckpoints>(RecentCheckpoints(capacity: 64))
    /// Held while a dataset's file is written.
    private let writing = LockedValue<Int>(0)
    /// Per dataset: whether a damaged checkpoint record already had its file rewritten.
    private let rewritten: UnsafeMutablePointer<Atomic<Bool>>
    /// The first shard error a count met (its entry holds `UInt64.max`).
    private let failure = LockedValue<ShardError?>(nil)
    private static let failed = UInt64.max
    /// An entry the background pass is counting; a planner that needs it takes it over.
    private static let claimedInBackground = UInt64.max - 1

    /// Whether an entry's value is a count (`rows + 2`).
    private static func isCount(_ value: UInt64) -> Bool { value >= 2 && value < claimedInBackground }

    /// - Parameters:
    ///   - folders: the datasets, in curriculum order.
    ///   - rowTokens: `R`, tokens in a row; `lookahead`: documents per group.
    ///   - store: where counts persist; nil to keep them in memory only.
    ///   - report: receives one line per problem with a persisted file (ignored, counted again) and
    ///     per file written.
    ///   - groupsPerCheckpoint: K; the store's when there is one, else ``BestFitCheckpoints``' spacing.
    init(folders: [DatasetFolder], rowTokens: Int, lookahead: Int, store: BestFitRowStore? = nil,
         groupsPerCheckpoint: Int? = nil, report: @escaping @Sendable (String) -> Void = { _ in }) {
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
        self.groupsPerCheckpoint = store?.groupsPerCheckpoint ?? groupsPerCheckpoint ?? BestFitCheckpoints.groupsPerCheckpoint(lookahead: lookahead)
        self.report = report
        self.persisted = LockedValue(Array(repeating: nil, count: folders.count))
        self.pending = LockedValue(Array(repeating: [:], count: folders.count))
        rewritten = .allocate(capacity: max(1, folders.count))
        for d in 0 ..< folders.count { (rewritten + d).initialize(to: Atomic(false)) }
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
        rewritten.deinitialize(count: folders.count)
        rewritten.deallocate()
    }

    /// The rows shard `shard` of dataset `dataset` packs into, if they have been counted.
    func rows(dataset: Int, shard: Int) -> UInt64? {
        let value = entries[firstEntry[dataset] + shard].load(ordering: .acquiring)
        return Self.isCount(value) ? value - 2 : nil
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
        for problem in keyProblems.prefix(3) { report("bestfit row cache: \(problem); its rows are counted, not cached") }
        let path = store.path(forDatasetFolder: folder.path)
        var offsets = [UInt64](repeating: 0, count: folder.shards.count)
        var found = 0
        do {
            if let entriesInFile = try store.load(path: path) {
                for (s, key) in shardKeys.enumerated() {
                    guard let key, let entry = entriesInFile[key],
                          entry.checkpointCount == checkpointCount(dataset: d, shard: s) else { continue }
                    let rows = entry.rows
                    if entries[firstEntry[d] + s].compareExchange(expected: 0, desired: rows + 2, ordering: .releasing).exchanged {
                        offsets[s] = entry.checkpointOffset
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
        persisted.withLock { $0[d] = PersistedDataset(path: path, keys: shardKeys, offsets: offsets) }
        if found == folder.shards.count { storeWasComplete[d].store(true, ordering: .relaxed) }
        loadStates[d].store(2, ordering: .releasing)
    }

    // MARK: - Counting and recording

    /// Counts shard `shard` of dataset `dataset` if no planner has claimed it yet (taking it over from
    /// the background pass).
    private func countIfUnclaimed(dataset: Int, shard: Int, entry: Int) {
        guard entries[entry].compareExchange(expected: 0, desired: 1, ordering: .relaxed).exchanged
              || entries[entry].compareExchange(expected: Self.claimedInBackground, desired: 1, ordering: .relaxed).exchanged else { return }
        let rows: UInt64
        do { rows = try countKeepingCheckpoints(dataset: dataset, shard: shard) } catch {
            failure.withLock { $0 = $0 ?? error }
            entries[entry].store(Self.failed, ordering: .releasing)
            return
        }
        noteCountedHere(dataset: dataset, shard: shard)
        record(rows: rows, dataset: dataset, shard: shard)
    }

    /// Counts shard `shard` of dataset `d` for the background pass (``BestFitBackgroundCount``) unless
    /// it is counted or claimed: loads the dataset's persisted counts first, claims the shard as the
    /// background's (a planner that needs it meanwhile takes it over and counts it itself), counts it
    /// and stores the count if the claim is still its own. A dataset's file is written when its last
    /// shard is counted, as for planners.
    /// - Returns: the error of a count that failed; the shard is then left uncounted (released), so
    ///   that a planner needing it counts it and reports the error on its own path.
    func countInBackground(dataset d: Int, shard s: Int) -> ShardError? {
        loadIfNeeded(dataset: d)
        let entry = firstEntry[d] + s
        guard entries[entry].compareExchange(expected: 0, desired: Self.claimedInBackground, ordering: .relaxed).exchanged else { return nil }
        do {
            let rows = try countKeepingCheckpoints(dataset: d, shard: s)
            if entries[entry].compareExchange(expected: Self.claimedInBackground, desired: rows + 2, ordering: .releasing).exchanged {
                noteCountedHere(dataset: d, shard: s)
                noteCounted(dataset: d, loaded: false)
            }
            return nil
        } catch {
            _ = entries[entry].compareExchange(expected: Self.claimedInBackground, desired: 0, ordering: .relaxed)
            return error
        }
    }

    /// Packs every group of shard `shard` of dataset `d` (``countWithCheckpoints(dataset:shard:)``)
    /// and keeps its checkpoints (for planners, and for its dataset's file); returns its rows.
    /// - Throws: `ShardError` when the shard's index pages cannot be read or are corrupt.
    private func countKeepingCheckpoints(dataset d: Int, shard s: Int) throws(ShardError) -> UInt64 {
        let counted = try countWithCheckpoints(dataset: d, shard: s)
        if !counted.checkpoints.isEmpty {
            recent.withLock { $0.insert(dataset: d, shard: s, counted.checkpoints) }
            if store != nil { pending.withLock { $0[d][s] = counted.checkpoints } }
        }
        return counted.rows
    }

    /// Adds a shard counted in this process to ``statistics``.
    private func noteCountedHere(dataset d: Int, shard s: Int) {
        countedTotal.add(1, ordering: .relaxed)
        countedDocuments.add(folders[d].shards[s].metadata.documentCount, ordering: .relaxed)
    }

    /// Waits until shard `shard` of dataset `dataset` is counted by another planner; a shard the
    /// background pass is counting (or released) is counted here instead.
    /// - Throws: `ShardError` when its count failed.
    private func waitFor(dataset: Int, shard: Int) throws(ShardError) {
        let entry = firstEntry[dataset] + shard
        Self.wait(until: {
            let value = entries[entry].load(ordering: .acquiring)
            if value == 0 || value == Self.claimedInBackground {
                countIfUnclaimed(dataset: dataset, shard: shard, entry: entry)
                return false
            }
            return value >= 2
        })
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
        guard countedShards[d].add(1, ordering: .acquiringAndReleasing).newValue == shards, !loaded, store != nil else { return }
        if storeWasComplete[d].load(ordering: .relaxed) { return }
        writeFile(dataset: d)
    }

    /// Writes dataset `d`'s file: every shard with a key and a count, with its checkpoints (taken in
    /// this process, read from the file being replaced, or taken again). One file write at a time.
    private func writeFile(dataset d: Int) {
        guard let store, let dataset = persisted.withLock({ $0[d] }) else { return }
        writing.withLock { _ in
            var inFile: [(key: BestFitShardKey, rows: UInt64, checkpoints: [UInt64])] = []
            var shardsInFile: [Int] = []
            for (s, key) in dataset.keys.enumerated() {
                guard let key, let rows = rows(dataset: d, shard: s) else { continue }
                let checkpoints: [UInt64]
                if let known = pending.withLock({ $0[d][s] }) ?? persistedCheckpoints(dataset: d, shard: s, rows: rows, quiet: true) {
                    checkpoints = known
                } else {
                    guard let counted = try? countWithCheckpoints(dataset: d, shard: s), counted.rows == rows else { continue }
                    checkpoints = counted.checkpoints
                }
                inFile.append((key, rows, checkpoints))
                shardsInFile.append(s)
            }
            do throws(EngineError) {
                let offsets = try store.save(inFile, path: dataset.path)
                persisted.withLock {
                    for (i, s) in shardsInFile.enumerated() { $0[d]?.offsets[s] = offsets[i] }
                }
                pending.withLock { $0[d] = [:] }
                report("bestfit row cache: wrote \(dataset.path) (\(inFile.count) shards of \(folders[d].path))")
            } catch {
                report("bestfit row cache: cannot write \(error.message); the counts stay in memory")
            }
        }
    }

    // MARK: - Checkpoints

    /// The checkpoints of shard `shard` of dataset `d` (``BestFitCheckpoints``): the rows before each
    /// K-th group, K = ``groupsPerCheckpoint``. Its rows must have been counted. Bounded work: from
    /// memory, else one read of the dataset's file (a damaged record is reported, the shard packed
    /// again and the file rewritten), else the shard is packed again (metadata only).
    /// - Throws: `ShardError` when the shard's index pages cannot be read or are corrupt.
    func checkpoints(dataset d: Int, shard s: Int) throws(ShardError) -> [UInt64] {
        guard checkpointCount(dataset: d, shard: s) > 0 else { return [] }
        if let hit = recent.withLock({ $0.lookup(dataset: d, shard: s) }) { return hit }
        let rows = rows(dataset: d, shard: s)
        var found = pending.withLock { $0[d][s] }
        if found == nil, let rows { found = persistedCheckpoints(dataset: d, shard: s, rows: rows, quiet: false) }
        if found == nil {
            let counted = try countWithCheckpoints(dataset: d, shard: s)
            if let rows, counted.rows != rows {
                throw ShardError(path: folders[d].shards[s].path, "bestfit: packs into \(counted.rows) rows, but \(rows) were counted (the shard changed?)")
            }
            found = counted.checkpoints
            if store != nil, persisted.withLock({ $0[d]?.offsets[s] ?? 0 }) != 0 {
                // The file has a record for it that could not be used: write the file again, once.
                pending.withLock { $0[d][s] = counted.checkpoints }
                if countedShards[d].load(ordering: .acquiring) >= folders[d].shards.count,
                   !rewritten[d].exchange(true, ordering: .relaxed) {
                    writeFile(dataset: d)
                }
            }
        }
        let checkpoints = found ?? []
        recent.withLock { $0.insert(dataset: d, shard: s, checkpoints) }
        return checkpoints
    }

    /// How many checkpoints shard `shard` of dataset `d` has.
    private func checkpointCount(dataset d: Int, shard s: Int) -> Int {
        BestFitCheckpoints.count(documents: folders[d].shards[s].metadata.documentCount, lookahead: lookahead,
                                 groupsPerCheckpoint: groupsPerCheckpoint)
    }

    /// The shard's checkpoints from the dataset's file, when it has a record for it that reads back
    /// whole (its key and CRC) and is consistent (non-decreasing, none past the shard's `rows`); else
    /// nil, with a report line unless `quiet`.
    private func persistedCheckpoints(dataset d: Int, shard s: Int, rows: UInt64, quiet: Bool) -> [UInt64]? {
        guard let store, let place = persisted.withLock({ state -> (path: String, key: BestFitShardKey?, offset: UInt64)? in
            guard let dataset = state[d] else { return nil }
            return (dataset.path, dataset.keys[s], dataset.offsets[s])
        }), let key = place.key, place.offset != 0 else { return nil }
        let (path, offset) = (place.path, place.offset)
        do throws(EngineError) {
            let checkpoints = try store.readCheckpoints(path: path, key: key, offset: offset, count: checkpointCount(dataset: d, shard: s))
            for i in checkpoints.indices where checkpoints[i] > rows || (i > 0 && checkpoints[i] < checkpoints[i - 1]) {
                throw EngineError("\(path): checkpoint record at \(offset): checkpoint \(i) is \(checkpoints[i]), out of order or past the shard's \(rows) rows")
            }
            return checkpoints
        } catch {
            if !quiet { report("bestfit row cache: ignored \(error.message); packing \(folders[d].shards[s].path) again") }
            return nil
        }
    }

    /// Packs every group of shard `shard` of dataset `d`: its rows and checkpoints.
    /// - Throws: `ShardError` when the shard's index pages cannot be read or are corrupt.
    private func countWithCheckpoints(dataset d: Int, shard s: Int) throws(ShardError) -> (rows: UInt64, checkpoints: [UInt64]) {
        var packer = BestFitPacker(rowTokens: rowTokens)
        var checkpoints: [UInt64] = []
        let rows = try packer.countRows(folders[d].shards[s], lookahead: lookahead, checkpointEvery: groupsPerCheckpoint, into: &checkpoints)
        return (rows, checkpoints)
    }

    /// Shards of every dataset (the entries ``countInBackground(dataset:shard:)`` goes through).
    var shardCount: Int { total }

    /// Shards to count at once when extending a count: as many as there are cores.
    static let batch: Int = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
}

/// A dataset's persisted file, its shards' keys and where their checkpoint records are.
private struct PersistedDataset: Sendable {
    var path: String
    var keys: [BestFitShardKey?]
    var offsets: [UInt64]
}

/// The checkpoints of the last few shards asked for, most recent first.
struct RecentCheckpoints: Sendable {
    let capacity: Int
    private var items: [(dataset: Int, shard: Int, checkpoints: [UInt64])] = []

    init(capacity: Int) { self.capacity = capacity }

    /// The checkpoints of a shard, if kept (and moves it to the front).
    mutating func lookup(dataset: Int, shard: Int) -> [UInt64]? {
        guard let i = items.firstIndex(where: { $0.dataset == dataset && $0.shard == shard }) else { return nil }
        let item = items.remove(at: i)
        items.insert(item, at: 0)
        return item.checkpoints
    }

    /// Keeps a shard's checkpoints, dropping the least recent beyond the capacity.
    mutating func insert(dataset: Int, shard: Int, _ checkpoints: [UInt64]) {
        items.removeAll { $0.dataset == dataset && $0.shard == shard }
        items.insert((dataset, shard, checkpoints), at: 0)
        if items.count > capacity { items.removeLast() }
    }
}
