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

/// The count of every shard's bestfit rows a daemon runs in the background once it is ready
/// (docs/PACKING.md, "Counting in the background"), so that a session resuming far into the stream
/// finds the counts made — read from the row-count cache, or counted while the daemon was idle —
/// instead of counting every shard first.
///
/// A few threads (``defaultThreads``) at the lowest CPU priority (nice 19) go through the shards of
/// every dataset in curriculum and file-name order: a dataset's persisted counts are loaded first,
/// then each shard not counted yet is counted (``BestFitRowCache/countInBackground(dataset:shard:)``);
/// each dataset's file is written as soon as its last shard is counted. Serving never waits for it:
/// a planner that needs a shard a background thread is counting takes the shard over and counts it
/// at its own priority, and a far jump counts what is left on all cores, sharing what the pass has
/// done. The counts are the planners' (same function of the shard), so the rows served are the same
/// whether the pass has run, is running or never ran.
public final class BestFitBackgroundCount: Sendable {
    /// What the pass did, when it ends.
    public struct Outcome: Sendable {
        /// Shards of every dataset.
        public var shards: Int
        /// Shards whose count came from the cache directory, and shards counted in this process (by
        /// the pass or by planners), when the pass ended.
        public var statistics: BestFitCountStatistics
        /// Seconds from the start of the pass to its end.
        public var seconds: Double
        /// Whether the pass was stopped (``cancel()``) before every shard was counted.
        public var cancelled: Bool
        /// The first shard whose count failed (it is left to the planners, which report it).
        public var firstError: ShardError?
    }

    private let cache: BestFitRowCache
    /// Global index of each dataset's first shard, and the total at the end.
    private let datasetStarts: [Int]
    private let next = Atomic<Int>(0)
    private let running: Atomic<Int>
    private let cancelled = Atomic<Bool>(false)
    private let firstError = LockedValue<ShardError?>(nil)
    private let started: UInt64
    private let done: @Sendable (Outcome) -> Void

    /// Threads a daemon counts with by default: a quarter of the cores, at least one.
    public static var defaultThreads: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) / 4) }

    /// Starts counting the rows of every shard of `stream`'s datasets on `threads` new threads at the
    /// lowest priority, and returns at once; `done` is called on one of them when every shard is
    /// counted (or the pass was cancelled). Returns nil, starting nothing, when the stream does not
    /// pack `bestfit` or `threads` is 0.
    public static func start(stream: GlobalStream, threads: Int, done: @escaping @Sendable (Outcome) -> Void) -> BestFitBackgroundCount? {
        guard case .bestfit = stream.curriculum.packing, threads > 0 else { return nil }
        let pass = BestFitBackgroundCount(cache: stream.bestFitRows, threads: threads, done: done)
        for _ in 0 ..< threads { DedicatedThread.run { pass.work() } }
        return pass
    }

    private init(cache: BestFitRowCache, threads: Int, done: @escaping @Sendable (Outcome) -> Void) {
        self.cache = cache
        var starts = [0]
        for folder in cache.folders { starts.append(starts.last! + folder.shards.count) }
        self.datasetStarts = starts
        self.running = Atomic(threads)
        self.started = DispatchTime.now().uptimeNanoseconds
        self.done = done
    }

    /// Stops the pass after the shards its threads are counting (a daemon that stops calls it).
    public func cancel() { cancelled.store(true, ordering: .relaxed) }

    /// One thread's work: lowers its priority, takes shards in order until none is left, and
    /// reports the outcome if it is the last thread to finish.
    private func work() {
        Self.lowerPriority()
        var dataset = 0
        while !cancelled.load(ordering: .relaxed) {
            let e = next.add(1, ordering: .relaxed).oldValue
            guard e < cache.shardCount else { break }
            while datasetStarts[dataset + 1] <= e { dataset += 1 }
            if let error = cache.countInBackground(dataset: dataset, shard: e - datasetStarts[dataset]) {
                firstError.withLock { $0 = $0 ?? error }
            }
        }
        guard running.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 else { return }
        done(Outcome(shards: cache.shardCount, statistics: cache.statistics,
                     seconds: Double((DispatchTime.now().uptimeNanoseconds - started) / 1_000_000) / 1000,
                     cancelled: cancelled.load(ordering: .relaxed), firstError: firstError.withLock { $0 }))
    }

    /// Sets the calling thread's nice value to 19 (Linux keeps a nice value per thread); elsewhere
    /// the thread keeps its priority.
    private static func lowerPriority() {
        #if os(Linux)
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
        #endif
    }
}
