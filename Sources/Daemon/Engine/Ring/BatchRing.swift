import Synchronization
import TokenfeedSystem

// BatchRing — a lock-free single-producer single-consumer ring of preallocated batch slots
// between a session's packer (the producer) and its connection's writer (the consumer).
//
//   producer: tryAcquireFree()/acquireFree() → fill slot.bytes → publish(slot, length:) (or abandon)
//   consumer: tryAcquireFull()/acquireFull() → read slot.payload → release(slot)
//
// Who uses it: a `RankFeed`'s packer thread is the only producer of each of its rings, and each
// ring is drained by one connection's `BatchWriter` (a feed of several replicas has a ring per
// replica, each drained by that replica's connection; a replica index is claimed by one connection
// at a time, `JobRegistry.claimReplica`). Tools and tests drain a ring from one thread.
//
// Design (rigtorp's SPSCQueue): `slotCount` byte regions mapped once at init and two positions,
// `writePosition` (stored only by the producer) and `readPosition` (stored only by the consumer),
// each on a cache line of its own; each side keeps a copy of the other's position on its own line
// and reloads it only when the copy says full (producer) or empty (consumer). The slot at position
// `p` is `p & (slotCount - 1)`.
//
// Invariants:
// 1. `slotCount` is a power of two; positions only grow (wrapping `Int` arithmetic: they are at
//    most `slotCount` apart, so differences are exact).
// 2. `0 <= writePosition - readPosition <= slotCount`. Every slot is, at every moment, in exactly
//    one place: free (positions `writePosition ..< readPosition + slotCount`, the first of which the
//    producer may hold as a `FreeBatchSlot`) or published (positions `readPosition ..<
//    writePosition`, the first of which the consumer may hold as a `FullBatchSlot`). Hence a slot's
//    bytes are written or read by one party at a time. The handles are noncopyable and consumed by
//    `publish`/`abandon`/`release`, so the compiler enforces the hand-over within a thread; each side
//    holds at most one slot at a time (taking a second before handing on the first is a
//    precondition failure: it would be the same slot).
// 3. One producer and one consumer at a time. Only the producer stores `writePosition` and touches
//    its copy of `readPosition`; only the consumer stores `readPosition` and touches its copy of
//    `writePosition`. (A role may move to another thread if the move itself is synchronised, as a
//    Dispatch queue or a thread start does.)
// 4. Publication order is position order; the consumer of position `n` gets `sequenceNumber == n`.
//    Sequence numbers are monotone, gap-free and never repeat.
// 5. Everything a producer wrote into a slot (and its length) before `publish` happens-before the
//    consumer's reads after `acquireFull` (releasing store / acquiring load of `writePosition`);
//    everything a consumer did before `release` happens-before the producer's next writes into that
//    slot (releasing store / acquiring load of `readPosition`).
// 6. Wait-free try-calls: each is a bounded number of steps, at most one load of the other side's
//    position; `publish`, `abandon` and `release` always complete at once. No retry path anywhere.
// 7. No allocation and no lock after init. A blocking call spins, then parks on the ring's
//    `EventCount` (`consumerEvents` for `acquireFull`, `producerEvents` for `acquireFree`);
//    `publish` and `close` notify the consumer's, `release` and `close` the producer's — a fence and
//    a load unless the other side is parked. The slots are an anonymous mapping (`AnonymousPages`)
//    that the kernel backs as the producer first writes each page: a slot's pages fault in during the
//    ring's first lap (once; docs/BENCHMARKS.md, "A good client while others abuse the daemon"), so
//    a ring costs only the slots actually used and a session that ends early costs almost nothing
//    (issue 8). They are unmapped at deinit.
// 8. Backpressure: when every slot is published or held, `tryAcquireFree` returns nil and
//    `acquireFree` waits; the producer can never overwrite a batch not yet released.
//
// Storage: slot `i` is `slotStride` bytes at `storage + i * slotStride`; `slotStride` is
// `slotCapacity` rounded up to 64 bytes, and `storage` is page-aligned, so every slot starts on its
// own cache line and no two slots share one. The two sides' lines are 128 bytes apart (x86's
// adjacent-line prefetcher pulls lines in pairs), and each slot's length has a line of its own.

/// A fixed set of preallocated, 64-byte-aligned batch slots passed from one producer to one
/// consumer in publication order, lock-free (wait-free try-calls), with backpressure when all slots
/// are in use.
///
/// `@unchecked Sendable`: after init only the slot storage, the slot lengths and the two sides'
/// lines change. Each slot's bytes and length are accessed only by the one party holding that slot
/// (invariant 2), each side's line only by that side (invariant 3), and hand-over is ordered by the
/// positions' acquire/release atomics (invariant 5).
public final class BatchRing: @unchecked Sendable {
    /// Slots are aligned to, and padded to a multiple of, this many bytes.
    public static let slotAlignment = 64

    /// The number of slots; a power of two.
    public let slotCount: Int
    /// The usable bytes of each slot.
    public let slotCapacity: Int
    /// The distance in bytes between the starts of consecutive slots (a multiple of 64).
    public let slotStride: Int
    /// Where the producer parks in ``acquireFree()``; notified by ``release(_:)`` and ``close()``. A
    /// feed that waits for several rings, or for other things too, passes one event count to all.
    public let producerEvents: EventCount
    /// Where the consumer parks in ``acquireFull()``; notified by ``publish(_:length:)`` and
    /// ``close()``. A consumer that also waits for other things notifies it itself for those.
    public let consumerEvents = EventCount()

    private let pages: AnonymousPages
    private var storage: UnsafeMutableRawPointer { pages.base }
    private let mask: Int
    /// The two sides' lines (``Side``): the producer's at 0, the consumer's at `sideSpacing`.
    private let sides: UnsafeMutableRawPointer
    /// Per slot, on a line of its own: the payload length the producer published.
    private let lengths: UnsafeMutableRawPointer
    private let closed = Atomic<Bool>(false)

    private static let sideSpacing = 128
    private static let lengthStride = 64

    /// One side's line: its own position and whether it holds a slot (stored by this side only; read
    /// by the other and by statistics), and its copy of the other side's position (this side only).
    private struct Side: ~Copyable {
        let position: Atomic<Int>
        let holdsSlot: Atomic<Bool>
        var otherPosition: Int
    }

    /// Maps `slotCount` slots of `slotCapacity` bytes each, zero-filled, all free. No page is
    /// backed yet: each is faulted in when the producer first writes it (during the first lap).
    ///
    /// - Parameter producerEvents: where the producer waits (default: an event count of its own).
    /// - Precondition: `slotCount` is a power of two; `slotCapacity` is positive.
    public init(slotCount: Int, slotCapacity: Int, producerEvents: EventCount = EventCount()) {
        precondition(slotCount > 0 && slotCount & (slotCount - 1) == 0,
                     "BatchRing slotCount must be a power of two, got \(slotCount)")
        precondition(slotCapacity > 0, "BatchRing slotCapacity must be positive, got \(slotCapacity)")
        let (padded, overflow) = slotCapacity.addingReportingOverflow(Self.slotAlignment - 1)
        precondition(!overflow, "BatchRing slotCapacity \(slotCapacity) is too large")
        let stride = padded / Self.slotAlignment * Self.slotAlignment
        let (total, totalOverflow) = stride.multipliedReportingOverflow(by: slotCount)
        precondition(!totalOverflow, "BatchRing of \(slotCount) × \(slotCapacity) bytes is too large")
        precondition(MemoryLayout<Side>.size <= Self.sideSpacing)

        self.slotCount = slotCount
        self.slotCapacity = slotCapacity
        self.slotStride = stride
        self.producerEvents = producerEvents
        mask = slotCount - 1
        pages = AnonymousPages(byteCount: total)
        sides = .allocate(byteCount: 2 * Self.sideSpacing, alignment: Self.sideSpacing)
        for offset in [0, Self.sideSpacing] {
            (sides + offset).bindMemory(to: Side.self, capacity: 1)
                .initialize(to: Side(position: Atomic(0), holdsSlot: Atomic(false), otherPosition: 0))
        }
        lengths = .allocate(byteCount: slotCount * Self.lengthStride, alignment: Self.lengthStride)
        for slot in 0 ..< slotCount {
            (lengths + slot * Self.lengthStride).bindMemory(to: Int.self, capacity: 1).initialize(to: 0)
        }
    }

    deinit {
        producer.deinitialize(count: 1)
        consumer.deinitialize(count: 1)
        sides.deallocate()
        lengths.deallocate()
        pages.deallocate()
    }

    private var producer: UnsafeMutablePointer<Side> { sides.assumingMemoryBound(to: Side.self) }
    private var consumer: UnsafeMutablePointer<Side> { (sides + Self.sideSpacing).assumingMemoryBound(to: Side.self) }

    private func length(ofSlot slot: Int) -> UnsafeMutablePointer<Int> {
        (lengths + slot * Self.lengthStride).assumingMemoryBound(to: Int.self)
    }

    /// Batches published and not yet taken by the consumer, read from any thread: exact when the
    /// ring is quiet, otherwise a snapshot. For statistics.
    public var publishedCount: Int {
        let held = consumer.pointee.holdsSlot.load(ordering: .relaxed) ? 1 : 0
        let read = consumer.pointee.position.load(ordering: .relaxed)
        let written = producer.pointee.position.load(ordering: .relaxed)
        return min(max(written &- read &- held, 0), slotCount)
    }

    /// Whether `close()` has been called.
    public var isClosed: Bool { closed.load(ordering: .acquiring) }

    // MARK: Producer

    /// Whether ``tryAcquireFree()`` would return a slot now. Producer only.
    public var hasFreeSlot: Bool {
        let written = producer.pointee.position.load(ordering: .relaxed)
        if written &- producer.pointee.otherPosition < slotCount { return true }
        producer.pointee.otherPosition = consumer.pointee.position.load(ordering: .acquiring)
        return written &- producer.pointee.otherPosition < slotCount
    }

    /// Takes the next free slot for the producer to fill, without waiting.
    ///
    /// - Returns: the slot, or `nil` if every slot is published or held (backpressure).
    /// - Precondition: the producer holds no slot (invariant 2).
    public func tryAcquireFree() -> FreeBatchSlot? {
        precondition(!producer.pointee.holdsSlot.load(ordering: .relaxed), "BatchRing: the producer already holds a free slot")
        guard hasFreeSlot else { return nil }
        producer.pointee.holdsSlot.store(true, ordering: .relaxed)
        let slot = producer.pointee.position.load(ordering: .relaxed) & mask
        return FreeBatchSlot(index: slot, bytes: UnsafeMutableRawBufferPointer(start: storage + slot * slotStride,
                                                                                 count: slotCapacity))
    }

    /// Takes the next free slot for the producer to fill, waiting (spin, then park on
    /// ``producerEvents``) while there is none.
    ///
    /// - Returns: the slot, or `nil` once the ring is closed.
    public func acquireFree() -> FreeBatchSlot? {
        while true {
            if isClosed { return nil }
            if let slot = tryAcquireFree() { return slot }
            producerEvents.wait(until: { hasFreeSlot || isClosed })
        }
    }

    /// Hands a filled slot to the consumer; its payload is its first `length` bytes.
    ///
    /// - Precondition: `0 <= length <= slotCapacity`.
    public func publish(_ slot: consuming FreeBatchSlot, length: Int) {
        precondition(length >= 0 && length <= slotCapacity,
                     "BatchRing.publish: length \(length) outside 0...\(slotCapacity)")
        self.length(ofSlot: slot.index).pointee = length
        producer.pointee.holdsSlot.store(false, ordering: .relaxed)
        producer.pointee.position.wrappingAdd(1, ordering: .releasing)
        consumerEvents.notify()
    }

    /// Returns a free slot unpublished (for example when the producer stops or fails); the next
    /// ``tryAcquireFree()`` returns it again.
    public func abandon(_ slot: consuming FreeBatchSlot) {
        _ = consume slot
        producer.pointee.holdsSlot.store(false, ordering: .relaxed)
    }

    // MARK: Consumer

    /// Whether ``tryAcquireFull()`` would return a slot now. Consumer only.
    public var hasPublishedSlot: Bool {
        let read = consumer.pointee.position.load(ordering: .relaxed)
        if consumer.pointee.otherPosition != read { return true }
        consumer.pointee.otherPosition = producer.pointee.position.load(ordering: .acquiring)
        return consumer.pointee.otherPosition != read
    }

    /// Takes the oldest published slot for the consumer to read, without waiting.
    ///
    /// - Returns: the slot, or `nil` if none is published.
    /// - Precondition: the consumer holds no slot (invariant 2).
    public func tryAcquireFull() -> FullBatchSlot? {
        precondition(!consumer.pointee.holdsSlot.load(ordering: .relaxed), "BatchRing: the consumer already holds a published slot")
        guard hasPublishedSlot else { return nil }
        consumer.pointee.holdsSlot.store(true, ordering: .relaxed)
        let position = consumer.pointee.position.load(ordering: .relaxed)
        let slot = position & mask
        return FullBatchSlot(index: slot, sequenceNumber: UInt64(position),
                             payload: UnsafeRawBufferPointer(start: storage + slot * slotStride,
                                                             count: length(ofSlot: slot).pointee))
    }

    /// Takes the oldest published slot for the consumer to read, waiting (spin, then park on
    /// ``consumerEvents``) while there is none.
    ///
    /// - Returns: the slot, or `nil` once the ring is closed and empty. Every slot published
    ///   before `close()` is still delivered; a slot published after `close()` may not be.
    public func acquireFull() -> FullBatchSlot? {
        while true {
            if let slot = tryAcquireFull() { return slot }
            if isClosed {
                // Publications that happened-before close() are visible now: one last look.
                return tryAcquireFull()
            }
            consumerEvents.wait(until: { hasPublishedSlot || isClosed })
        }
    }

    /// Gives a read slot back to the producer.
    public func release(_ slot: consuming FullBatchSlot) {
        _ = consume slot
        consumer.pointee.holdsSlot.store(false, ordering: .relaxed)
        consumer.pointee.position.wrappingAdd(1, ordering: .releasing)
        producerEvents.notify()
    }

    // MARK: Either side

    /// Stops the ring: a waiting producer returns `nil` at once, a waiting consumer once the
    /// published slots are drained. Idempotent; every call wakes both sides. The non-blocking calls
    /// keep working.
    public func close() {
        closed.store(true, ordering: .releasing)
        producerEvents.notify()
        consumerEvents.notify()
    }
}
