import Synchronization
import TokenfeedSystem

// BatchRing — a lock-free ring of preallocated batch slots between the packers (producers)
// and the connection writers (consumers).
//
//   producer: tryAcquireFree()/acquireFree() → fill slot.bytes → publish(slot, length:)
//   consumer: tryAcquireFull()/acquireFull() → read slot.payload → release(slot)
//
// Design: `slotCount` byte regions mapped once at init, and two bounded
// MPMC index queues (`SlotQueue`, Vyukov's algorithm): `free` holds the indices of slots ready
// to be filled, `full` the indices (with payload lengths) of slots ready to be read. A slot
// index moves free → producer → full → consumer → free, forever.
//
// Invariants:
// 1. `slotCount` is a power of two; both queues have capacity `slotCount`.
// 2. Every slot index is, at every moment, in exactly one place: the free queue, one producer's
//    `FreeBatchSlot`, the full queue, or one consumer's `FullBatchSlot`. Hence a slot's bytes
//    are written or read by one party at a time, and neither queue ever holds more than
//    `slotCount` entries. The handles are noncopyable and consumed by `publish`/`abandon`/
//    `release`, so the compiler enforces the hand-over within a thread.
// 2a. Vyukov's queue is lock-free in practice, not in the strict sense: a cell is reusable only
//    once the party holding its previous lap has stored the cell's sequence. So a thread
//    paused between its CAS and that store (two instructions apart; a preemption there lasts a
//    scheduler quantum) makes an enqueue landing on the same cell one lap later report "full",
//    and a dequeue reaching it report "empty", although by invariant 2 the queue is neither.
//    `publish`/`abandon`/`release` therefore retry with `Backoff` until the store lands (found
//    by the ThreadSanitizer run, whose scheduling makes such pauses common), and the try-calls
//    may return nil spuriously for that moment; the blocking calls just wait it out.
// 3. Publication order is the full queue's ticket order; the consumer of ticket `n` gets
//    `sequenceNumber == n`. Sequence numbers are monotone, gap-free and never repeat.
// 4. Everything a producer wrote into a slot before `publish` happens-before a consumer's reads
//    after `acquireFull` (releasing store / acquiring load of the cell's sequence in `SlotQueue`);
//    everything a consumer did before `release` happens-before the next producer's writes.
// 5. No allocation and no lock after init. The try-calls make no system call; the blocking
//    calls — and the hand-back calls in the moment of 2a — only spin, `sched_yield` and
//    `usleep` (see `Backoff`) while they cannot proceed. The slots are an anonymous mapping
//    (`AnonymousPages`) that the kernel backs as the producer first writes each page: a slot's
//    pages fault in during the ring's first lap (once; measured in docs/BENCHMARKS.md, "A good
//    client while others abuse the daemon"), so a ring costs only the slots actually used and a
//    session that ends early costs almost nothing (issue 8). They are unmapped at deinit.
// 6. Backpressure: when every slot is filled or being filled, `tryAcquireFree` returns nil and
//    `acquireFree` waits; producers can never overwrite a batch not yet released.
//
// Storage: slot `i` is `slotStride` bytes at `storage + i * slotStride`; `slotStride` is
// `slotCapacity` rounded up to 64 bytes, and `storage` is page-aligned, so every slot starts
// on its own cache line and no two slots share one.

/// A fixed set of preallocated, 64-byte-aligned batch slots passed from producers to consumers
/// in publication order, lock-free, with backpressure when all slots are in use.
///
/// `@unchecked Sendable`: the stored properties are immutable after init except the slot
/// storage (a raw pointer) and the atomics. Each slot's bytes are accessed only by the one
/// party holding that slot's handle (invariant 2), and hand-over is ordered by the queues'
/// acquire/release atomics (invariant 4), so concurrent use from any threads is race-free.
public final class BatchRing: @unchecked Sendable {
    /// Slots are aligned to, and padded to a multiple of, this many bytes.
    public static let slotAlignment = 64

    /// The number of slots; a power of two.
    public let slotCount: Int
    /// The usable bytes of each slot.
    public let slotCapacity: Int
    /// The distance in bytes between the starts of consecutive slots (a multiple of 64).
    public let slotStride: Int

    private let pages: AnonymousPages
    private var storage: UnsafeMutableRawPointer { pages.base }
    private let free: SlotQueue
    private let full: SlotQueue
    private let closed = Atomic<Bool>(false)

    /// Maps `slotCount` slots of `slotCapacity` bytes each, zero-filled, all free. No page is
    /// backed yet: each is faulted in when the producer first writes it (during the first lap).
    ///
    /// - Precondition: `slotCount` is a power of two; `slotCapacity` is positive.
    public init(slotCount: Int, slotCapacity: Int) {
        precondition(slotCount > 0 && slotCount & (slotCount - 1) == 0,
                     "BatchRing slotCount must be a power of two, got \(slotCount)")
        precondition(slotCapacity > 0, "BatchRing slotCapacity must be positive, got \(slotCapacity)")
        let (padded, overflow) = slotCapacity.addingReportingOverflow(Self.slotAlignment - 1)
        precondition(!overflow, "BatchRing slotCapacity \(slotCapacity) is too large")
        let stride = padded / Self.slotAlignment * Self.slotAlignment
        let (total, totalOverflow) = stride.multipliedReportingOverflow(by: slotCount)
        precondition(!totalOverflow, "BatchRing of \(slotCount) × \(slotCapacity) bytes is too large")

        self.slotCount = slotCount
        self.slotCapacity = slotCapacity
        self.slotStride = stride
        pages = AnonymousPages(byteCount: total)
        free = SlotQueue(capacity: slotCount)
        full = SlotQueue(capacity: slotCount)
        for slot in 0..<slotCount {
            _ = free.enqueue(SlotQueue.Entry(slot: slot, length: 0))
        }
    }

    deinit {
        pages.deallocate()
    }

    /// Batches published and not yet taken by a consumer (a snapshot, for statistics).
    public var publishedCount: Int { full.approximateCount }

    /// Whether `close()` has been called.
    public var isClosed: Bool { closed.load(ordering: .acquiring) }

    /// Takes a free slot for a producer to fill, without waiting.
    ///
    /// - Returns: the slot, or `nil` if every slot is published or held (backpressure).
    public func tryAcquireFree() -> FreeBatchSlot? {
        guard let (entry, _) = free.dequeue() else { return nil }
        return FreeBatchSlot(index: entry.slot, bytes: bytes(ofSlot: entry.slot))
    }

    /// Takes a free slot for a producer to fill, waiting (spin, yield, sleep; no lock) while
    /// there is none.
    ///
    /// - Returns: the slot, or `nil` once the ring is closed.
    public func acquireFree() -> FreeBatchSlot? {
        var backoff = Backoff()
        while true {
            if closed.load(ordering: .acquiring) { return nil }
            if let slot = tryAcquireFree() { return slot }
            backoff.wait()
        }
    }

    /// Hands a filled slot to the consumers; its payload is its first `length` bytes.
    ///
    /// - Precondition: `0 <= length <= slotCapacity`.
    public func publish(_ slot: consuming FreeBatchSlot, length: Int) {
        precondition(length >= 0 && length <= slotCapacity,
                     "BatchRing.publish: length \(length) outside 0...\(slotCapacity)")
        handOver(SlotQueue.Entry(slot: slot.index, length: length), to: full)
    }

    /// Returns a free slot unpublished (for example when the producer stops or fails).
    public func abandon(_ slot: consuming FreeBatchSlot) {
        handOver(SlotQueue.Entry(slot: slot.index, length: 0), to: free)
    }

    /// Takes the oldest published slot for a consumer to read, without waiting.
    ///
    /// - Returns: the slot, or `nil` if none is published (or the oldest one is still being
    ///   published by a producer that claimed its place a moment ago).
    public func tryAcquireFull() -> FullBatchSlot? {
        guard let (entry, ticket) = full.dequeue() else { return nil }
        let start = UnsafeRawPointer(storage + entry.slot * slotStride)
        return FullBatchSlot(index: entry.slot, sequenceNumber: UInt64(ticket),
                             payload: UnsafeRawBufferPointer(start: start, count: entry.length))
    }

    /// Takes the oldest published slot for a consumer to read, waiting (spin, yield, sleep;
    /// no lock) while there is none.
    ///
    /// - Returns: the slot, or `nil` once the ring is closed and empty. Every slot published
    ///   before `close()` is still delivered; a slot published after `close()` may not be.
    public func acquireFull() -> FullBatchSlot? {
        var backoff = Backoff()
        while true {
            if let slot = tryAcquireFull() { return slot }
            if closed.load(ordering: .acquiring) {
                // Publications that happened-before close() are visible now: one last look.
                return tryAcquireFull()
            }
            backoff.wait()
        }
    }

    /// Gives a read slot back to the producers.
    public func release(_ slot: consuming FullBatchSlot) {
        handOver(SlotQueue.Entry(slot: slot.index, length: 0), to: free)
    }

    /// Stops the ring: waiting producers return `nil` at once, waiting consumers once the
    /// published slots are drained. Idempotent. The non-blocking calls keep working.
    public func close() {
        closed.store(true, ordering: .releasing)
    }

    /// Enqueues `entry`, retrying while the queue reports a transient "full" (invariant 2a).
    private func handOver(_ entry: SlotQueue.Entry, to queue: borrowing SlotQueue) {
        if queue.enqueue(entry) != nil { return }
        var backoff = Backoff()
        repeat { backoff.wait() } while queue.enqueue(entry) == nil
    }

    private func bytes(ofSlot slot: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: storage + slot * slotStride, count: slotCapacity)
    }
}
