import Synchronization
import TokenfeedShards

/// Decompresses, ahead of need and within a byte budget, exactly the frames one rank's packer will
/// ask for, in the order it will ask for them.
///
/// The mixer's future is deterministic, so the preloader walks the same steps, sequences, pieces and
/// frames as the ``BatchAssembler`` (metadata only) and produces the *demand*: the list of frames the
/// packer will request, consecutive repeats collapsed. Each demanded frame is a reference into a
/// ``FrameCache`` — the daemon's, shared by every session, so a frame that several ranks' rows touch is
/// decompressed once per node — whose decompression starts when the entry is planned, using the
/// cores the packer leaves free. When the cache has no free slot the look-ahead waits.
///
/// The look-ahead is bounded by steps, not by entries: the demand reaches at most
/// ``Lookahead/steps`` steps past the one the packer is packing, and stops growing once it holds
/// ``Lookahead/frames`` frames (enough decompressions in flight to keep every core busy). So the
/// first batch waits for the planning of a few steps, not of thousands of frames (docs/BENCHMARKS.md).
///
/// Threading: the preloader is used by the packer's thread only. It takes the cache's lock once per
/// frame it plans and once per frame it releases; waiting for a frame's bytes takes none.
public final class Preloader: FrameProvider {
    private let stream: GlobalStream
    private let cache: FrameCache

    // Demand: a fixed-capacity FIFO of (key, slot, step) the packer will consume in order.
    private var demandKeys: [FrameKey]
    private var demandSlots: [Int]
    /// The step of each demand entry (parallel to `demandKeys`).
    private var demandSteps: [UInt64]
    private var demandHead = 0, demandCount = 0
    private var current: (key: FrameKey, slot: Int)?
    /// The step the packer is packing (that of the last entry it consumed).
    private var packerStep: UInt64

    // The demand generator: walks steps from `nextStep`, keeps the current step's keys.
    private var planner: SequencePlanner
    private let slice: RankSlice
    private var nextStep: UInt64
    private let stepCount: UInt64
    private var pending: [FrameKey] = []
    private var pendingIndex = 0
    private var lastGenerated: FrameKey?
    private var pieces: [SequencePiece] = []
    private let lookahead: Lookahead
    private let progress: FeedProgress?

    /// How far ahead of the packer the preloader plans.
    public struct Lookahead: Sendable, Hashable {
        /// Steps past the packer's current step that may be planned (at least 1).
        public var steps: Int
        /// Demand entries beyond which planning pauses (at least 1).
        public var frames: Int

        public init(steps: Int, frames: Int) {
            self.steps = max(1, steps)
            self.frames = max(1, frames)
        }

        /// The daemon's: 16 steps, and four frames per core (at least 8) in the demand — measured in
        /// docs/BENCHMARKS.md ("First batch"): throughput equals the unbounded look-ahead's, the first
        /// batch waits for the planning of a few steps.
        public static let `default` = Lookahead(steps: 16, frames: max(8, 4 * Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        /// The look-ahead before issue 9: 4,096 demand entries, whatever the steps.
        public static let entries4096 = Lookahead(steps: Int.max, frames: 4096)
    }

    /// - Parameters:
    ///   - cache: where frames are decompressed and kept (the daemon's shared cache, or a feed's own).
    ///   - lookahead: how far ahead of the packer to plan.
    ///   - progress: receives the counts of steps and frames planned.
    public init(stream: GlobalStream, slice: RankSlice, startStep: UInt64, stepCount: UInt64, cache: FrameCache,
                lookahead: Lookahead = .default, progress: FeedProgress? = nil) {
        self.stream = stream
        self.cache = cache
        self.slice = slice
        self.nextStep = startStep
        self.packerStep = startStep
        self.stepCount = stepCount
        self.lookahead = lookahead
        self.progress = progress
        let demandCapacity = min(lookahead.frames, 1 << 16)
        demandKeys = Array(repeating: FrameKey(dataset: 0, shard: 0, frame: 0), count: demandCapacity)
        demandSlots = Array(repeating: 0, count: demandCapacity)
        demandSteps = Array(repeating: 0, count: demandCapacity)
        planner = stream.planner()
        pending.reserveCapacity(1024)
        pieces.reserveCapacity(1024)
    }

    /// Decompressed bytes of `shard`'s largest frame (`Int.max` if that does not fit an `Int`).
    public static func largestFrameBytes(_ shard: ShardReader) -> Int {
        ShardTable.decodedBytes(tokens: min(UInt64(max(0, shard.metadata.tokensPerFrame)), shard.metadata.tokenCount),
                                width: shard.metadata.tokenWidth)
    }

    deinit { releaseAll() }

    public func frame(_ key: FrameKey) throws(ShardError) -> UnsafeRawBufferPointer {
        if let current, current.key == key { return cache.bytes(of: current.slot, key: key) }
        if let current {
            cache.release(current.slot)
            self.current = nil
        }
        try topUp(needed: true)
        precondition(demandCount > 0 && demandKeys[demandHead] == key,
                     "preloader: the packer asked for \(key), the plan says \(demandCount > 0 ? "\(demandKeys[demandHead])" : "nothing")")
        let slot = demandSlots[demandHead]
        packerStep = demandSteps[demandHead]
        demandHead = (demandHead + 1) % demandKeys.count
        demandCount -= 1
        current = (key, slot)
        if let error = cache.wait(slot) { throw error }
        try topUp(needed: false)
        return cache.bytes(of: slot, key: key)
    }

    /// Releases the whole look-ahead (and the frame last returned), so that other sessions can use the
    /// cache while this one's packer is idle; planning restarts at `step`, the next step the packer
    /// will pack. Call between batches only.
    public func dropLookahead(nextStep step: UInt64) {
        releaseAll()
        pending.removeAll(keepingCapacity: true)
        pendingIndex = 0
        lastGenerated = nil
        nextStep = step
        packerStep = step
    }

    /// Whether the preloader holds references it could drop.
    public var holdsFrames: Bool { current != nil || demandCount > 0 }

    private func releaseAll() {
        if let current {
            cache.release(current.slot)
            self.current = nil
        }
        while demandCount > 0 {
            cache.release(demandSlots[demandHead])
            demandHead = (demandHead + 1) % demandKeys.count
            demandCount -= 1
        }
    }

    /// Extends the demand while there is room in it and a slot for its next new frame; `needed`: the
    /// packer waits for the demand's first frame, so an empty demand gets it whatever the cache's state.
    /// - Throws: `ShardError` when planning the next step needs an index page that cannot be read.
    private func topUp(needed: Bool) throws(ShardError) {
        while demandCount < demandKeys.count, let key = try peekDemand() {
            let slot: Int
            if needed && demandCount == 0 {
                slot = cache.acquireWaiting(key)
            } else {
                guard let acquired = cache.acquire(key) else { return }
                slot = acquired
            }
            let tail = (demandHead + demandCount) % demandKeys.count
            demandKeys[tail] = key
            demandSlots[tail] = slot
            demandSteps[tail] = nextStep - 1
            demandCount += 1
            pendingIndex += 1
            progress?.framesPlanned.wrappingAdd(1, ordering: .relaxed)
        }
    }

    /// The next frame of the demand, generating the next step's frames when needed; nil at the end of
    /// the run, or when the next step is ``Lookahead/steps`` past the packer's and the demand is not empty.
    private func peekDemand() throws(ShardError) -> FrameKey? {
        while pendingIndex >= pending.count {
            guard nextStep < stepCount, nextStep - packerStep < UInt64(lookahead.steps) || demandCount == 0 else { return nil }
            pending.removeAll(keepingCapacity: true)
            pendingIndex = 0
            for j in 0 ..< slice.batchSize {
                pieces.removeAll(keepingCapacity: true)
                let record = try planner.plan(sequence: slice.sequence(step: nextStep, j), step: nextStep, appendingTo: &pieces)
                for piece in pieces {
                    let metadata = stream.datasets[Int(record.dataset)].shards[Int(piece.shard)].metadata
                    let first = metadata.frame(containingToken: piece.offset)
                    let last = metadata.frame(containingToken: piece.offset + UInt64(piece.length) - 1)
                    for f in first ... last {
                        let key = FrameKey(dataset: Int(record.dataset), shard: Int(piece.shard), frame: f)
                        if key != lastGenerated { pending.append(key); lastGenerated = key }
                    }
                }
            }
            nextStep += 1
            progress?.stepsPlanned.wrappingAdd(1, ordering: .relaxed)
        }
        return pending[pendingIndex]
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
