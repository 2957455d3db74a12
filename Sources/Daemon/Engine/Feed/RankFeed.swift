import Dispatch
import Synchronization
import TokenfeedShards

/// Produces one rank's batches, step after step from `startStep`, into a ``BatchRing`` that the
/// connection writer drains: the packer runs ahead until the ring is full (backpressure) and the
/// frame source prefetches the frames the next batches need.
///
/// The producer runs on its own serial Dispatch queue. When the curriculum ends the ring is closed;
/// when a frame is corrupt or unreadable the error is kept (``failure``) and the ring closed, so the
/// consumer sees every good batch before it, then the error — nothing is skipped or repeated.
public final class RankFeed: Sendable {
    public let stream: GlobalStream
    public let slice: RankSlice
    public let startStep: UInt64
    public let layout: PackedBatchLayout
    public let ring: BatchRing
    /// Steps in the whole run for this global batch (the stream ends after them).
    public let stepCount: UInt64
    private let preloadBytes: Int
    private let queue: DispatchQueue
    private let failureBox = LockedValue<ShardError?>(nil)
    private let finished = Atomic<Bool>(false)
    private let lookahead: Preloader.Lookahead
    /// How far the preloader has planned (and had planned at the first batch).
    public let progress = FeedProgress()

    /// - Parameters:
    ///   - ringSlots: batches buffered ahead (rounded up to a power of two).
    ///   - preloadBytes: the byte budget for decompressed frames held ahead of need.
    ///   - lookahead: how far ahead of the packer the preloader plans.
    public init(stream: GlobalStream, slice: RankSlice, startStep: UInt64, ringSlots: Int = 8, preloadBytes: Int = 256 << 20,
                lookahead: Preloader.Lookahead = .default) {
        self.lookahead = lookahead
        self.stream = stream
        self.slice = slice
        self.startStep = startStep
        self.layout = PackedBatchLayout(batchSize: slice.batchSize, rowTokens: stream.rowTokens, tokenWidth: stream.tokenWidth.bytes)
        var slots = 1
        while slots < max(2, ringSlots) { slots <<= 1 }
        self.ring = BatchRing(slotCount: slots, slotCapacity: layout.capacity)
        self.stepCount = stream.plan.totalSequences / UInt64(slice.globalBatch)
        self.preloadBytes = preloadBytes
        self.queue = DispatchQueue(label: "tokenfeed.feed.rank\(slice.rank)")
    }

    /// Bytes a feed of this shape takes: its ring (`ringSlots` rounded up to a power of two, of one
    /// packed batch each) and its preloader's slot pool. Computed without allocating anything.
    public static func memoryBytes(stream: GlobalStream, batchSize: Int, ringSlots: Int, preloadBytes: Int) -> Int {
        let layout = PackedBatchLayout(batchSize: batchSize, rowTokens: stream.rowTokens, tokenWidth: stream.tokenWidth.bytes)
        var slots = 1
        while slots < max(2, ringSlots) { slots <<= 1 }
        let (ring, overflow) = layout.capacity.multipliedReportingOverflow(by: slots)
        return overflow ? Int.max : ring &+ Preloader.residentBytes(stream: stream, budgetBytes: preloadBytes)
    }

    /// Bytes the feed's preloader holds (its slot pool, allocated once when the feed starts).
    public var preloadResidentBytes: Int { Preloader.residentBytes(stream: stream, budgetBytes: preloadBytes) }

    /// The error that stopped the feed, if one did (after the ring is drained).
    public var failure: ShardError? { failureBox.withLock { $0 } }

    /// Whether the producer has stopped (end of stream, error, or ``stop()``).
    public var isFinished: Bool { finished.load(ordering: .acquiring) }

    /// Starts producing, on a thread of its own (the packer waits for ring space while its client
    /// does not read; that must not hold a Dispatch pool thread), confined to the feed's queue.
    public func start() {
        DedicatedThread.run { [self] in queue.sync { produce() } }
    }

    /// Stops producing and closes the ring; batches already published can still be drained.
    public func stop() { ring.close() }

    private func produce() {
        defer { finished.store(true, ordering: .releasing); ring.close() }
        var assembler = BatchAssembler(stream: stream, slice: slice)
        let frames = Preloader(stream: stream, slice: slice, startStep: startStep, stepCount: stepCount, budgetBytes: preloadBytes,
                               lookahead: lookahead, progress: progress)
        var step = startStep
        while step < stepCount {
            guard let slot = ring.acquireFree() else { return }        // closed
            do {
                try assembler.assemble(step: step, into: slot.bytes, frames: frames)
            } catch {
                failureBox.withLock { $0 = error }
                ring.abandon(slot)
                return
            }
            layout.storeMetadata(records: assembler.records, pieces: assembler.pieces, into: slot.bytes)
            if step == startStep { progress.firstBatchPublished() }
            ring.publish(slot, length: layout.capacity)
            step += 1
        }
    }
}
