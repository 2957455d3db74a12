import Dispatch
import Synchronization
import TokenfeedShards
import TokenfeedSystem

/// Produces one rank's batches, step after step from `startStep`, into a ``BatchRing`` that the
/// connection writer drains: the packer runs ahead until the ring is full (backpressure) and the
/// frame source prefetches the frames the next batches need.
///
/// A feed made with `packAhead` packs only that many steps until ``allowPackingAhead()`` (the
/// daemon: the Hello's credits, until the client's first Credit shows that it reads): a session
/// that says Hello and leaves costs the batches it asked for, not a ring's worth (issue 8).
///
/// Frames come from a ``FrameCache``: the daemon passes its node-wide one, shared by every session;
/// a feed made without one has its own, of `preloadBytes`. While the ring is full and another
/// session waits for a cache slot, the packer drops its look-ahead (``Preloader/dropLookahead(nextStep:)``).
///
/// A feed for several replicas of one data-parallel rank (tensor/pipeline parallelism) packs each
/// batch once and publishes a copy into each replica's ring (``rings``); the packer waits for room
/// in every ring, so the slowest replica paces it and each holds at most its ring.
///
/// The packer is each ring's one producer (``BatchRing`` is single-producer single-consumer). Its
/// waits — for credit (the packing limit), for ring space, for another session's look-ahead to be
/// dropped — spin, then park on one ``EventCount`` (``packerEvents``), which the rings' consumers
/// (a released slot), ``allowPackingAhead()``, ``stop()`` and the frame cache (a session waiting for
/// a slot) notify: an idle session's packer costs no CPU and no wake-up.
///
/// The producer runs on its own serial Dispatch queue. When the curriculum ends the ring is closed;
/// when a frame is corrupt or unreadable the error is kept (``failure``) and the ring closed, so the
/// consumer sees every good batch before it, then the error — nothing is skipped or repeated.
public final class RankFeed: Sendable {
    public let stream: GlobalStream
    public let slice: RankSlice
    public let startStep: UInt64
    public let layout: PackedBatchLayout
    /// The first replica's ring (the only one without replicas).
    public var ring: BatchRing { rings[0] }
    /// One ring per replica, each receiving every batch.
    public let rings: [BatchRing]
    /// Steps in the whole run for this global batch (the stream ends after them).
    public let stepCount: UInt64
    /// Where the feed's frames are decompressed: shared (the daemon's) or its own.
    public let frameCache: FrameCache
    private let queue: DispatchQueue
    private let failureBox = LockedValue<ShardError?>(nil)
    private let finished = Atomic<Bool>(false)
    /// The step before which the packer may pack (``allowPackingAhead()`` lifts it to `UInt64.max`).
    private let packLimit: Atomic<UInt64>
    private let lookahead: Preloader.Lookahead
    /// Where the packer parks: the producer side of every ring, also notified by
    /// ``allowPackingAhead()`` and by the frame cache under pressure.
    public let packerEvents: EventCount
    /// How far the preloader has planned (and had planned at the first batch).
    public let progress = FeedProgress()

    /// - Parameters:
    ///   - ringSlots: batches buffered ahead (rounded up to a power of two).
    ///   - preloadBytes: the byte budget of the feed's own frame cache (unused with `frameCache`).
    ///   - frameCache: a cache shared with other feeds (the daemon's); nil gives the feed its own.
    ///   - lookahead: how far ahead of the packer the preloader plans.
    ///   - replicas: rings to fill with the same batches (one per replica of the rank).
    ///   - packAhead: steps from `startStep` packed before ``allowPackingAhead()`` is called (nil: no bound).
    public init(stream: GlobalStream, slice: RankSlice, startStep: UInt64, ringSlots: Int = 8, preloadBytes: Int = 256 << 20,
                frameCache: FrameCache? = nil, lookahead: Preloader.Lookahead = .default, replicas: Int = 1, packAhead: UInt64? = nil) {
        self.packLimit = Atomic(packAhead.map { startStep.addingReportingOverflow($0).overflow ? .max : startStep + $0 } ?? .max)
        self.lookahead = lookahead
        self.stream = stream
        self.slice = slice
        self.startStep = startStep
        self.layout = PackedBatchLayout(batchSize: slice.batchSize, rowTokens: stream.rowTokens, tokenWidth: stream.tokenWidth.bytes)
        var slots = 1
        while slots < max(2, ringSlots) { slots <<= 1 }
        let capacity = layout.capacity
        let packerEvents = EventCount()
        self.packerEvents = packerEvents
        self.rings = (0 ..< max(1, replicas)).map { _ in
            BatchRing(slotCount: slots, slotCapacity: capacity, producerEvents: packerEvents)
        }
        self.stepCount = stream.plan.totalSequences / UInt64(slice.globalBatch)
        self.frameCache = frameCache ?? FrameCache(stream: stream, budgetBytes: preloadBytes)
        self.queue = DispatchQueue(label: "tokenfeed.feed.rank\(slice.rank)")
    }

    /// Bytes a feed of this shape takes with a frame cache of its own: its ring (``ringBytes(stream:batchSize:ringSlots:)``)
    /// and the cache's slot pool. Computed without allocating anything.
    public static func memoryBytes(stream: GlobalStream, batchSize: Int, ringSlots: Int, preloadBytes: Int) -> Int {
        let ring = ringBytes(stream: stream, batchSize: batchSize, ringSlots: ringSlots)
        return ring == Int.max ? Int.max : ring &+ FrameCache.residentBytes(stream: stream, budgetBytes: preloadBytes)
    }

    /// Bytes of a feed's ring: `ringSlots` rounded up to a power of two, of one packed batch each —
    /// what a feed over a shared frame cache takes (`Int.max` on overflow).
    public static func ringBytes(stream: GlobalStream, batchSize: Int, ringSlots: Int) -> Int {
        let layout = PackedBatchLayout(batchSize: batchSize, rowTokens: stream.rowTokens, tokenWidth: stream.tokenWidth.bytes)
        var slots = 1
        while slots < max(2, ringSlots) { slots <<= 1 }
        let (ring, overflow) = layout.capacity.multipliedReportingOverflow(by: slots)
        return overflow ? Int.max : ring
    }

    /// The error that stopped the feed, if one did (after the ring is drained).
    public var failure: ShardError? { failureBox.withLock { $0 } }

    /// Whether the producer has stopped (end of stream, error, or ``stop()``).
    public var isFinished: Bool { finished.load(ordering: .acquiring) }

    /// Starts producing, on a thread of its own (the packer waits for ring space while its client
    /// does not read; that must not hold a Dispatch pool thread), confined to the feed's queue.
    public func start() {
        DedicatedThread.run { [self] in queue.sync { produce() } }
    }

    /// Lets the packer run ahead as far as the rings hold (the client's first Credit: it reads what it
    /// asked for). Idempotent; one atomic store.
    public func allowPackingAhead() {
        packLimit.store(.max, ordering: .releasing)
        packerEvents.notify()
    }

    /// Stops producing and closes the rings; batches already published can still be drained.
    public func stop() { for ring in rings { ring.close() } }

    private func produce() {
        frameCache.addPressureListener(packerEvents)
        defer {
            frameCache.removePressureListener(packerEvents)
            finished.store(true, ordering: .releasing)
            stop()
        }
        var assembler = BatchAssembler(stream: stream, slice: slice)
        let frames = Preloader(stream: stream, slice: slice, startStep: startStep, stepCount: stepCount, cache: frameCache,
                               lookahead: lookahead, progress: progress)
        var step = startStep
        while step < stepCount {
            guard mayPack(step, frames), let slot = freeSlot(in: ring, frames, nextStep: step) else { return }        // closed
            do {
                try assembler.assemble(step: step, into: slot.bytes, frames: frames)
            } catch {
                failureBox.withLock { $0 = error }
                ring.abandon(slot)
                return
            }
            layout.storeMetadata(records: assembler.records, pieces: assembler.pieces, into: slot.bytes)
            // The other replicas' copies first (waiting for room in each ring), then the first's.
            var closed = false
            for other in rings.dropFirst() {
                guard let copy = freeSlot(in: other, frames, nextStep: step + 1) else { closed = true; break }
                copy.bytes.copyMemory(from: UnsafeRawBufferPointer(rebasing: slot.bytes[..<layout.capacity]))
                other.publish(copy, length: layout.capacity)
            }
            if closed {
                ring.abandon(slot)
                return
            }
            if step == startStep { progress.firstBatchPublished() }
            ring.publish(slot, length: layout.capacity)
            step += 1
        }
    }

    /// Whether `step` may be packed, waiting while it lies beyond the packing limit (with the look-ahead
    /// dropped if another session waits for a frame cache slot). False once the ring is closed.
    private func mayPack(_ step: UInt64, _ frames: Preloader) -> Bool {
        waitForPacker(until: { step < packLimit.load(ordering: .acquiring) }, ring: ring, frames, nextStep: step)
    }

    /// A free ring slot, waiting while the ring is full; meanwhile, if another session waits for a
    /// frame cache slot, drops the look-ahead. Nil once the ring is closed.
    private func freeSlot(in ring: BatchRing, _ frames: Preloader, nextStep: UInt64) -> FreeBatchSlot? {
        guard waitForPacker(until: { ring.hasFreeSlot }, ring: ring, frames, nextStep: nextStep) else { return nil }
        return ring.tryAcquireFree()
    }

    /// Waits until `ready()` (spin, then park on ``packerEvents``), dropping the look-ahead whenever
    /// another session waits for a frame cache slot. True once `ready()`; false once `ring` is closed.
    private func waitForPacker(until ready: () -> Bool, ring: BatchRing, _ frames: Preloader, nextStep: UInt64) -> Bool {
        while true {
            if ready() { return true }
            if ring.isClosed { return false }
            if frames.holdsFrames, frameCache.isUnderPressure {
                frames.dropLookahead(nextStep: nextStep)
                continue
            }
            packerEvents.wait(until: {
                ready() || ring.isClosed || (frames.holdsFrames && frameCache.isUnderPressure)
            })
        }
    }
}
