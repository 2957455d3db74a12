import Synchronization

/// A bounded multi-producer multi-consumer FIFO of jobs (slot indices): Dmitry Vyukov's bounded
/// MPMC queue (per-cell sequence numbers). The queue of ``DecompressionWorkers``: every session's
/// packer submits (several producers) and every worker thread takes (several consumers) — the one
/// place in the engine with several of each, so the one MPMC queue (the batch ring is SPSC).
///
/// How it works. Cell `c` carries a sequence number. For a position `p` (a 64-bit ticket,
/// `c = p & mask`):
/// - `sequence == p`: the cell is empty and ready for the producer holding ticket `p`;
/// - `sequence == p + 1`: the cell holds the job enqueued with ticket `p`, ready for the
///   consumer holding ticket `p`;
/// - a producer claims ticket `p` by advancing `enqueuePosition` from `p` to `p + 1` (CAS), writes
///   the job, then stores `sequence = p + 1` (release);
/// - a consumer claims ticket `p` by advancing `dequeuePosition` (CAS), reads the job, then
///   stores `sequence = p + capacity` (release): the cell is empty for the next lap.
///
/// Invariants:
/// - `capacity` is a power of two, so `p & mask` is the cell of ticket `p`.
/// - Each ticket is claimed by exactly one producer and exactly one consumer (the CAS decides);
///   between the claim and the release store, that party alone touches the cell's job.
/// - The job enqueued with ticket `p` is the one dequeued with ticket `p`: FIFO.
/// - Positions and sequences only grow; differences are taken with wrapping arithmetic, correct
///   while two live positions are less than 2^62 apart (always: they are at most `capacity` apart).
/// - Lock-free in practice, not in the strict sense: a cell is reusable only once the party holding
///   its previous lap has stored the cell's sequence. A thread paused between its CAS and that store
///   makes an enqueue landing on the same cell one lap later report "full", and a dequeue reaching
///   it report "empty", for that moment. Its user waits it out (``DecompressionWorkers`` parks on
///   an ``EventCount`` that every completed enqueue and dequeue notifies).
///
/// Memory ordering. The sequence store that hands a cell over is `releasing` and the load that
/// takes it is `acquiring`, so the job — and everything the producer wrote before enqueueing —
/// happens-before the consumer's reads. The position counters only arbitrate tickets, never publish
/// data, so their loads and CASes are `relaxed`.
///
/// Layout. Each cell occupies its own 64-byte line, and the two position counters sit 128 bytes
/// apart (two lines: x86's adjacent-line prefetcher pulls lines in pairs), so producers and
/// consumers do not invalidate each other's lines.
struct JobQueue: ~Copyable {
    /// The number of jobs the queue can hold; a power of two.
    let capacity: Int
    private let mask: Int
    /// `capacity` cells of `cellStride` bytes: `Atomic<Int>` sequence at offset 0, the job (`Int`) at 8.
    private let cells: UnsafeMutableRawPointer
    /// `enqueuePosition` at offset 0, `dequeuePosition` at offset `counterSpacing`.
    private let counters: UnsafeMutableRawPointer

    static let cellStride = 64
    static let counterSpacing = 128
    private static let jobOffset = 8

    /// Creates an empty queue of `capacity` jobs (a power of two, at least 1).
    init(capacity: Int) {
        precondition(capacity > 0 && capacity & (capacity - 1) == 0,
                     "JobQueue capacity must be a power of two, got \(capacity)")
        precondition(MemoryLayout<Atomic<Int>>.size <= Self.jobOffset
                     && Self.jobOffset + MemoryLayout<Int>.size <= Self.cellStride)
        self.capacity = capacity
        self.mask = capacity - 1
        cells = UnsafeMutableRawPointer.allocate(byteCount: capacity * Self.cellStride,
                                                 alignment: Self.cellStride)
        for index in 0..<capacity {
            let cell = cells + index * Self.cellStride
            cell.bindMemory(to: Atomic<Int>.self, capacity: 1).initialize(to: Atomic(index))
            (cell + Self.jobOffset).bindMemory(to: Int.self, capacity: 1).initialize(to: -1)
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

    private func job(ofCell index: Int) -> UnsafeMutablePointer<Int> {
        (cells + index * Self.cellStride + Self.jobOffset).assumingMemoryBound(to: Int.self)
    }

    /// Appends `newJob` unless the queue is full.
    ///
    /// - Returns: false if all `capacity` cells hold jobs not yet dequeued (or, for a moment, one is
    ///   still being dequeued: see the invariants).
    func enqueue(_ newJob: Int) -> Bool {
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
                    job(ofCell: cell).pointee = newJob
                    self.sequence(ofCell: cell).pointee.store(position &+ 1, ordering: .releasing)
                    return true
                }
                position = original
            } else if difference < 0 {
                return false  // the cell still holds the job of the previous lap: full
            } else {
                position = enqueuePosition.pointee.load(ordering: .relaxed)  // overtaken
            }
        }
    }

    /// Removes the oldest job, if any.
    ///
    /// - Returns: the job, or `nil` if the queue is empty — or if the job at the head has been
    ///   claimed by a producer that has not finished writing it yet.
    func dequeue() -> Int? {
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
                    let taken = job(ofCell: cell).pointee
                    self.sequence(ofCell: cell).pointee.store(position &+ capacity,
                                                              ordering: .releasing)
                    return taken
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
