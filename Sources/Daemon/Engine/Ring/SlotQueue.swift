import Synchronization

/// A bounded multi-producer multi-consumer FIFO of slot entries: Dmitry Vyukov's bounded MPMC
/// queue (per-cell sequence numbers), specialised to the ring's `(slot, length)` entries.
///
/// How it works. Cell `c` carries a sequence number. For a position `p` (a 64-bit ticket,
/// `c = p & mask`):
/// - `sequence == p`: the cell is empty and ready for the producer holding ticket `p`;
/// - `sequence == p + 1`: the cell holds the entry enqueued with ticket `p`, ready for the
///   consumer holding ticket `p`;
/// - a producer claims ticket `p` by advancing `enqueuePosition` from `p` to `p + 1` (CAS), writes
///   the entry, then stores `sequence = p + 1` (release);
/// - a consumer claims ticket `p` by advancing `dequeuePosition` (CAS), reads the entry, then
///   stores `sequence = p + capacity` (release): the cell is empty for the next lap.
///
/// Invariants:
/// - `capacity` is a power of two, so `p & mask` is the cell of ticket `p`.
/// - Each ticket is claimed by exactly one producer and exactly one consumer (the CAS decides);
///   between the claim and the release store, that party alone touches the cell's entry.
/// - The entry enqueued with ticket `p` is the one dequeued with ticket `p`, so dequeue tickets
///   number the entries in enqueue order: 0, 1, 2, … with no gap and no repeat.
/// - Positions and sequences only grow; differences are taken with wrapping arithmetic, correct
///   while two live positions are less than 2^62 apart (always: they are at most `capacity` apart).
///
/// Memory ordering. The sequence store that hands a cell over is `releasing` and the load that
/// takes it is `acquiring`, so the entry — and everything the producer wrote before enqueueing,
/// such as a slot's payload — happens-before the consumer's reads. The position counters only
/// arbitrate tickets, never publish data, so their loads and CASes are `relaxed`.
///
/// Layout. Each cell occupies its own 64-byte line, and the two position counters sit 128 bytes
/// apart (two lines: x86's adjacent-line prefetcher pulls lines in pairs), so producers and
/// consumers do not invalidate each other's lines.
struct SlotQueue: ~Copyable {
    /// What travels through the queue: a slot index and the payload length written into it.
    struct Entry: Equatable {
        var slot: Int
        var length: Int
    }

    /// The number of entries the queue can hold; a power of two.
    let capacity: Int
    private let mask: Int
    /// `capacity` cells of `cellStride` bytes: `Atomic<Int>` sequence at offset 0, `Entry` at 8.
    private let cells: UnsafeMutableRawPointer
    /// `enqueuePosition` at offset 0, `dequeuePosition` at offset `counterSpacing`.
    private let counters: UnsafeMutableRawPointer

    static let cellStride = 64
    static let counterSpacing = 128
    private static let entryOffset = 8

    /// Creates an empty queue of `capacity` entries (a power of two, at least 1).
    init(capacity: Int) {
        precondition(capacity > 0 && capacity & (capacity - 1) == 0,
                     "SlotQueue capacity must be a power of two, got \(capacity)")
        precondition(MemoryLayout<Atomic<Int>>.size <= Self.entryOffset
                     && Self.entryOffset + MemoryLayout<Entry>.size <= Self.cellStride)
        self.capacity = capacity
        self.mask = capacity - 1
        cells = UnsafeMutableRawPointer.allocate(byteCount: capacity * Self.cellStride,
                                                 alignment: Self.cellStride)
        for index in 0..<capacity {
            let cell = cells + index * Self.cellStride
            cell.bindMemory(to: Atomic<Int>.self, capacity: 1).initialize(to: Atomic(index))
            (cell + Self.entryOffset).bindMemory(to: Entry.self, capacity: 1)
                .initialize(to: Entry(slot: -1, length: 0))
        }
        counters = UnsafeMutableRawPointer.allocate(byteCount: 2 * Self.counterSpacing,
                                                    alignment: Self.counterSpacing)
        counters.bindMemory(to: Atomic<Int>.self, capacity: 1).initialize(to: Atomic(0))
        (counters + Self.counterSpacing).bindMemory(to: Atomic<Int>.self, capacity: 1)
            .initialize(to: Atomic(0))
    }

    deinit {
        for index in 0..<capacity {
            _ = sequence(ofCell: index).deinitialize(count: 1)
        }
        _ = enqueuePosition.deinitialize(count: 1)
        _ = dequeuePosition.deinitialize(count: 1)
        cells.deallocate()
        counters.deallocate()
    }

    private var enqueuePosition: UnsafeMutablePointer<Atomic<Int>> {
        counters.assumingMemoryBound(to: Atomic<Int>.self)
    }

    private var dequeuePosition: UnsafeMutablePointer<Atomic<Int>> {
        (counters + Self.counterSpacing).assumingMemoryBound(to: Atomic<Int>.self)
    }

    private func sequence(ofCell index: Int) -> UnsafeMutablePointer<Atomic<Int>> {
        (cells + index * Self.cellStride).assumingMemoryBound(to: Atomic<Int>.self)
    }

    private func entry(ofCell index: Int) -> UnsafeMutablePointer<Entry> {
        (cells + index * Self.cellStride + Self.entryOffset).assumingMemoryBound(to: Entry.self)
    }

    /// Entries enqueued and not yet dequeued, read without synchronisation: exact when the queue
    /// is quiet, otherwise a snapshot that may be off by the operations in progress. For statistics.
    var approximateCount: Int {
        let enqueued = enqueuePosition.pointee.load(ordering: .relaxed)
        let dequeued = dequeuePosition.pointee.load(ordering: .relaxed)
        return min(max(enqueued &- dequeued, 0), mask + 1)
    }

    /// Appends `entry` unless the queue is full.
    ///
    /// - Returns: the entry's ticket (its position in enqueue order), or `nil` if all
    ///   `capacity` cells hold entries not yet dequeued.
    func enqueue(_ newEntry: Entry) -> Int? {
        var position = enqueuePosition.pointee.load(ordering: .relaxed)
        while true {
            let cell = position & mask
            let sequence = sequence(ofCell: cell).pointee.load(ordering: .acquiring)
            let difference = sequence &- position
            if difference == 0 {
                let (exchanged, original) = enqueuePosition.pointee.weakCompareExchange(
                    expected: position, desired: position &+ 1,
                    successOrdering: .relaxed, failureOrdering: .relaxed)
                if exchanged {
                    entry(ofCell: cell).pointee = newEntry
                    self.sequence(ofCell: cell).pointee.store(position &+ 1, ordering: .releasing)
                    return position
                }
                position = original
            } else if difference < 0 {
                return nil  // the cell still holds the entry of the previous lap: full
            } else {
                position = enqueuePosition.pointee.load(ordering: .relaxed)  // overtaken
            }
        }
    }

    /// Removes the oldest entry, if any.
    ///
    /// - Returns: the entry and its ticket (0 for the first entry ever enqueued, then 1, 2, …),
    ///   or `nil` if the queue is empty — or if the entry at the head has been claimed by a
    ///   producer that has not finished writing it yet.
    func dequeue() -> (entry: Entry, ticket: Int)? {
        var position = dequeuePosition.pointee.load(ordering: .relaxed)
        while true {
            let cell = position & mask
            let sequence = sequence(ofCell: cell).pointee.load(ordering: .acquiring)
            let difference = sequence &- (position &+ 1)
            if difference == 0 {
                let (exchanged, original) = dequeuePosition.pointee.weakCompareExchange(
                    expected: position, desired: position &+ 1,
                    successOrdering: .relaxed, failureOrdering: .relaxed)
                if exchanged {
                    let taken = entry(ofCell: cell).pointee
                    self.sequence(ofCell: cell).pointee.store(position &+ capacity,
                                                              ordering: .releasing)
                    return (taken, position)
                }
                position = original
            } else if difference < 0 {
                return nil  // not yet written for this lap: empty
            } else {
                position = dequeuePosition.pointee.load(ordering: .relaxed)  // overtaken
            }
        }
    }
}
