import Synchronization
import TokenfeedShards
import TokenfeedSystem

/// Decompressed frames shared by every session of a daemon — one decompression per frame per node
/// while the frame stays in the budget (docs/ENGINE.md is silent; docs/BENCHMARKS.md, "Frame cache").
///
/// A fixed pool of slots, `budget ÷ (largest frame + largest compressed frame)`, allocated once (pages
/// become resident when a frame is first decompressed into them). A slot holds one frame, named by its
/// ``FrameKey``, and a reference count: each ``Preloader`` demand entry holds one reference from its
/// planning until the packer has moved past the frame. A frame asked for while cached (referenced by
/// another session, or kept after its last reference) is a hit; otherwise the least recently released
/// unreferenced slot is reused and its frame decompressed by one of the cache's long-lived
/// ``DecompressionWorkers`` threads (one per core, at most one per slot, each with its own zstd
/// context), fed through a queue allocated once: starting a decompression allocates nothing.
///
/// Threading: the table (keys, references, the LRU list) is guarded by one `LockedValue`, taken once
/// per frame a preloader plans and once per frame it releases — per frame, never per token, and not
/// for each batch when a frame spans several (docs/BENCHMARKS.md, "Frame cache", measures it). The
/// frame bytes are written by the slot's one job and read after an acquiring load of the slot's
/// state, which the job stored with release: waiting for a frame takes no lock. Nothing is allocated
/// per frame (``DecompressionWorkers``; enforced by ServerTests' AllocationTests). Waits spin, then
/// park on an ``EventCount``: for a frame, on `frameReady` (notified as each job ends); for a slot, on
/// `slotFreed` (notified as a slot becomes evictable).
///
/// No session can starve the others: a session whose packer needs a frame and finds every slot
/// referenced registers as a waiter (``acquireWaiting(_:)``); while one waits, look-ahead requests
/// for new slots are refused, and feeds blocked on a full ring drop their look-ahead
/// (``isUnderPressure``; a waiter notifies the feeds' event counts registered with
/// ``addPressureListener(_:)``, so that parked packers wake to drop theirs), so referenced slots drain
/// and the waiter gets one.
public final class FrameCache: @unchecked Sendable {
    /// Slots in the pool.
    public let slotCount: Int
    /// Bytes of the slot pool (allocated once, faulted in as frames land).
    public let residentBytes: Int
    /// Frames decompressed (jobs started) since the cache was made.
    public let framesDecompressed = Atomic<Int>(0)
    /// Frame requests (preloader demand entries) served, hits and misses.
    public let frameRequests = Atomic<Int>(0)

    private static let idle = 0, loading = 1, ready = 2, failed = 3
    private let datasets: [DatasetFolder]
    private let frameBytes: Int
    private let scratchBytes: Int
    private let storage: UnsafeMutableRawBufferPointer
    private let states: UnsafeMutablePointer<Atomic<Int>>
    /// Per slot, the error of its last job; written by that job before its releasing store of the state.
    private let errors: UnsafeMutablePointer<ShardError?>
    private let table: LockedValue<Table>
    /// Per slot, the frame its job decompresses; written before the job is queued (the queue publishes it).
    private let jobKeys: UnsafeMutablePointer<FrameKey>
    /// One zstd context per worker thread.
    private let decompressors: [ZstdDecompressor]
    private let workers: DecompressionWorkers
    private let waiters = Atomic<Int>(0)
    /// Notified whenever a job ends (its slot's state is ready or failed).
    private let frameReady = EventCount()
    /// Notified whenever a slot joins the LRU list (unreferenced, its job ended).
    private let slotFreed = EventCount()
    /// The event counts of the packers that drop their look-ahead under pressure (``addPressureListener(_:)``).
    private let pressureListeners = LockedValue<[EventCount]>([])

    /// A pool for `stream`'s frames within `budgetBytes` (at least two slots, never more than the
    /// stream has frames).
    public init(stream: GlobalStream, budgetBytes: Int) {
        datasets = stream.datasets
        (frameBytes, scratchBytes, slotCount) = Self.sizing(stream: stream, budgetBytes: budgetBytes)
        residentBytes = slotCount * (frameBytes + scratchBytes)
        storage = .allocate(byteCount: residentBytes, alignment: 64)
        states = .allocate(capacity: slotCount)
        for s in 0 ..< slotCount { (states + s).initialize(to: Atomic(Self.idle)) }
        errors = .allocate(capacity: slotCount)
        errors.initialize(repeating: nil, count: slotCount)
        table = LockedValue(Table(slotCount: slotCount))
        jobKeys = .allocate(capacity: slotCount)
        jobKeys.initialize(repeating: FrameKey(dataset: 0, shard: 0, frame: 0), count: slotCount)
        // One thread per core (as many jobs as the global queue ran at once before), at most one per slot.
        let threads = max(1, min(slotCount, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        decompressors = (0 ..< threads).map { _ in ZstdDecompressor() }
        workers = DecompressionWorkers(threads: threads, capacity: slotCount)
        // Weak: the threads must not keep the cache alive. A job holds the cache strongly while it runs,
        // so the cache cannot go while one runs; a job still queued when it goes is dropped.
        workers.start { [weak self] slot, worker in self?.run(slot: slot, worker: worker) }
    }

    deinit {
        workers.stop()
        jobKeys.deinitialize(count: slotCount)
        jobKeys.deallocate()
        states.deinitialize(count: slotCount)
        states.deallocate()
        errors.deinitialize(count: slotCount)
        errors.deallocate()
        storage.deallocate()
    }

    /// The slot pool for `budgetBytes`: each slot holds the largest frame actually present
    /// decompressed (a shard's frames hold `min(tokens_per_frame, token_count)` tokens at most, whatever
    /// `tokens_per_frame` declares) and the largest compressed one, both rounded up to 64 bytes; at
    /// least two slots, and never more than the stream has frames.
    static func sizing(stream: GlobalStream, budgetBytes: Int) -> (frameBytes: Int, scratchBytes: Int, slots: Int) {
        // Per dataset, from its shard table (O(datasets), not O(shards), for every session).
        let frame = ((stream.datasets.map(\.shards.largestDecodedFrame).max() ?? 64) + 63) & ~63
        let scratch = ((stream.datasets.map(\.shards.largestFrame).max() ?? 64) + 63) & ~63
        let frameCount = stream.datasets.reduce(0) { $0 + $1.shards.frameCount }
        return (frame, scratch, max(2, min(frameCount, budgetBytes / (frame + scratch))))
    }

    /// The bytes a cache with `budgetBytes` holds resident, allocated once.
    public static func residentBytes(stream: GlobalStream, budgetBytes: Int) -> Int {
        let (frame, scratch, slots) = sizing(stream: stream, budgetBytes: budgetBytes)
        return slots * (frame + scratch)
    }

    /// Whether a packer waits for a slot: feeds that are not packing (their ring is full) should drop
    /// their look-ahead (``Preloader/dropLookahead(nextStep:)``).
    public var isUnderPressure: Bool { waiters.load(ordering: .relaxed) > 0 }

    /// Registers the event count a packer parks on, so that a packer that starts waiting for a slot
    /// wakes it (to check ``isUnderPressure`` and drop its look-ahead). Once per feed.
    public func addPressureListener(_ events: EventCount) {
        pressureListeners.withLock { $0.append(events) }
    }

    /// Removes an event count registered with ``addPressureListener(_:)``.
    public func removePressureListener(_ events: EventCount) {
        pressureListeners.withLock { $0.removeAll { $0 === events } }
    }

    /// Takes a reference to `key`'s frame — cached, or in a reused slot whose decompression starts —
    /// for a look-ahead entry; nil when no slot is free, or when a packer waits for one and `key` is
    /// not cached.
    func acquire(_ key: FrameKey) -> Int? {
        acquire(key, waiting: false)
    }

    /// Takes a reference to `key`'s frame for a packer that needs it now, waiting (spin, then park
    /// on `slotFreed`; no lock held while parked) until a slot is released if every slot is
    /// referenced. Meanwhile the cache is under pressure, and the registered packers are woken to
    /// drop their look-ahead.
    func acquireWaiting(_ key: FrameKey) -> Int {
        if let slot = acquire(key, waiting: true) { return slot }
        waiters.wrappingAdd(1, ordering: .relaxed)
        defer { waiters.wrappingSubtract(1, ordering: .relaxed) }
        pressureListeners.withLock { for events in $0 { events.notify() } }
        var slot: Int?
        slotFreed.wait(until: {
            slot = acquire(key, waiting: true)
            return slot != nil
        })
        return slot!
    }

    private func acquire(_ key: FrameKey, waiting: Bool) -> Int? {
        var started = false
        let slot: Int? = table.withLock { t in
            if let s = t.map[key], states[s].load(ordering: .acquiring) != Self.failed {
                if t.listed[s] { t.unlink(s) }
                t.refs[s] += 1
                return s
            }
            guard t.head >= 0, waiting || waiters.load(ordering: .relaxed) == 0 else { return nil }
            let s = t.head
            t.unlink(s)
            if let old = t.keys[s], t.map[old] == s { t.map[old] = nil }
            t.keys[s] = key
            t.map[key] = s
            t.refs[s] = 1
            t.finished[s] = false
            states[s].store(Self.loading, ordering: .relaxed)
            started = true
            return s
        }
        guard let slot else { return nil }
        frameRequests.wrappingAdd(1, ordering: .relaxed)
        if started { start(slot: slot, key: key) }
        return slot
    }

    /// Returns a reference taken by ``acquire(_:)`` or ``acquireWaiting(_:)``.
    func release(_ slot: Int) {
        let freed = table.withLock { t in
            t.refs[slot] -= 1
            guard t.refs[slot] == 0 && t.finished[slot] else { return false }
            makeEvictable(slot, &t)
            return true
        }
        if freed { slotFreed.notify() }
    }

    /// Waits (no lock; spin, then park on `frameReady`) until `slot`'s frame is decompressed;
    /// returns its error, if any.
    func wait(_ slot: Int) -> ShardError? {
        frameReady.wait(until: { states[slot].load(ordering: .acquiring) != Self.loading })
        return states[slot].load(ordering: .acquiring) == Self.failed ? errors[slot] : nil
    }

    /// The decompressed bytes of `key`'s frame in `slot` (after ``wait(_:)`` returned no error).
    func bytes(of slot: Int, key: FrameKey) -> UnsafeRawBufferPointer {
        let reader = datasets[Int(key.dataset)].shards[Int(key.shard)]
        let count = Int(reader.metadata.tokenRange(ofFrame: Int(key.frame)).count) * reader.metadata.tokenWidth.bytes
        let start = slot * (frameBytes + scratchBytes)
        return UnsafeRawBufferPointer(rebasing: storage[start ..< start + count])
    }

    /// An unreferenced slot whose job has finished joins the LRU list (a failed frame first in line,
    /// and forgotten so that the next request decompresses it again).
    private func makeEvictable(_ slot: Int, _ t: inout Table) {
        if states[slot].load(ordering: .acquiring) == Self.failed {
            if let key = t.keys[slot], t.map[key] == slot { t.map[key] = nil }
            t.keys[slot] = nil
            t.prepend(slot)
        } else {
            t.append(slot)
        }
    }

    private func start(slot: Int, key: FrameKey) {
        framesDecompressed.wrappingAdd(1, ordering: .relaxed)
        jobKeys[slot] = key
        workers.submit(slot: slot)
    }

    /// Decompresses `slot`'s frame (``jobKeys``) with `worker`'s context, on that worker's thread. Its
    /// buffers are the slot's, which no one else writes while the job runs (the slot is not evictable
    /// until the job has finished).
    private func run(slot: Int, worker: Int) {
        let key = jobKeys[slot]
        let reader = datasets[Int(key.dataset)].shards[Int(key.shard)]
        let start = slot * (frameBytes + scratchBytes)
        let destination = UnsafeMutableRawBufferPointer(rebasing: storage[start ..< start + frameBytes])
        let scratch = UnsafeMutableRawBufferPointer(rebasing: storage[start + frameBytes ..< start + frameBytes + scratchBytes])
        do {
            try reader.decodeFrame(Int(key.frame), into: destination, scratch: scratch, decompressor: decompressors[worker])
            errors[slot] = nil
            states[slot].store(Self.ready, ordering: .releasing)
        } catch {
            errors[slot] = error
            states[slot].store(Self.failed, ordering: .releasing)
        }
        frameReady.notify()
        let freed = table.withLock { t in
            t.finished[slot] = true
            guard t.refs[slot] == 0 else { return false }
            makeEvictable(slot, &t)
            return true
        }
        if freed { slotFreed.notify() }
    }

    /// The slots' keys, references and the LRU list of evictable slots (unreferenced, job finished).
    private struct Table {
        var map: [FrameKey: Int] = [:]
        var keys: [FrameKey?]
        var refs: [Int]
        var finished: [Bool]
        var listed: [Bool]
        var prev: [Int]
        var next: [Int]
        var head = -1, tail = -1

        init(slotCount: Int) {
            keys = Array(repeating: nil, count: slotCount)
            refs = Array(repeating: 0, count: slotCount)
            finished = Array(repeating: true, count: slotCount)
            listed = Array(repeating: false, count: slotCount)
            prev = Array(repeating: -1, count: slotCount)
            next = Array(repeating: -1, count: slotCount)
            map.reserveCapacity(slotCount * 2)
            for s in 0 ..< slotCount { append(s) }
        }

        mutating func append(_ s: Int) {
            listed[s] = true
            prev[s] = tail
            next[s] = -1
            if tail >= 0 { next[tail] = s } else { head = s }
            tail = s
        }

        mutating func prepend(_ s: Int) {
            listed[s] = true
            prev[s] = -1
            next[s] = head
            if head >= 0 { prev[head] = s } else { tail = s }
            head = s
        }

        mutating func unlink(_ s: Int) {
            listed[s] = false
            if prev[s] >= 0 { next[prev[s]] = next[s] } else { head = next[s] }
            if next[s] >= 0 { prev[next[s]] = prev[s] } else { tail = prev[s] }
            prev[s] = -1
            next[s] = -1
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
