import Dispatch
import Synchronization
import TokenfeedShards

/// Decompresses, ahead of need and within a byte budget, exactly the frames one rank's packer will
/// ask for, in the order it will ask for them.
///
/// The mixer's future is deterministic, so the preloader walks the same steps, sequences, pieces and
/// frames as the ``BatchAssembler`` (metadata only) and produces the *demand*: the list of frames the
/// packer will request, consecutive repeats collapsed. Each demanded frame gets a slot of a fixed
/// pool — `budget ÷ (largest frame + largest compressed frame)` slots, allocated once — and a
/// decompression job on a concurrent Dispatch queue, using the cores the packer leaves free. A slot
/// is reused only once no pending demand refers to it (least recently used first); when no slot is
/// free the look-ahead waits. Frames shared by several upcoming sequences are decompressed once.
///
/// Threading: all bookkeeping happens on the packer's thread (the one calling ``frame(_:)``). A job
/// touches only its slot's bytes, decompressor and error, and publishes completion with a releasing
/// store of the slot's state, which the packer reads with an acquiring load. No lock.
public final class Preloader: FrameProvider {
    /// Resident bytes of the slot pool.
    public let residentBytes: Int
    public let slotCount: Int
    private let stream: GlobalStream
    private let frameBytes: Int
    private let scratchBytes: Int
    private let storage: UnsafeMutableRawBufferPointer
    private let jobs: SlotJobs
    private var slotKey: [FrameKey?]
    private var refs: [Int]
    private var lastUse: [UInt64]
    private var clock: UInt64 = 0
    private var map: [FrameKey: Int] = [:]

    // Demand: a fixed-capacity FIFO of (key, slot) the packer will consume in order.
    private var demandKeys: [FrameKey]
    private var demandSlots: [Int]
    private var demandHead = 0, demandCount = 0
    private var current: (key: FrameKey, slot: Int)?

    // The demand generator: walks steps from `nextStep`, keeps the current step's keys.
    private var planner: SequencePlanner
    private let slice: RankSlice
    private var nextStep: UInt64
    private let stepCount: UInt64
    private var pending: [FrameKey] = []
    private var pendingIndex = 0
    private var lastGenerated: FrameKey?
    private var pieces: [SequencePiece] = []

    /// - Parameter budgetBytes: bytes of decompressed (and compressed scratch) frames to hold;
    ///   at least two frames are always held.
    public init(stream: GlobalStream, slice: RankSlice, startStep: UInt64, stepCount: UInt64, budgetBytes: Int,
                demandCapacity: Int = 4096) {
        self.stream = stream
        self.slice = slice
        self.nextStep = startStep
        self.stepCount = stepCount
        (frameBytes, scratchBytes, slotCount) = Self.sizing(stream: stream, budgetBytes: budgetBytes)
        residentBytes = slotCount * (frameBytes + scratchBytes)
        // Not touched here: a page becomes resident when a frame is first decompressed into it.
        storage = .allocate(byteCount: residentBytes, alignment: 64)
        jobs = SlotJobs(slotCount: slotCount)
        slotKey = Array(repeating: nil, count: slotCount)
        refs = Array(repeating: 0, count: slotCount)
        lastUse = Array(repeating: 0, count: slotCount)
        map.reserveCapacity(slotCount * 2)
        demandKeys = Array(repeating: FrameKey(dataset: 0, shard: 0, frame: 0), count: demandCapacity)
        demandSlots = Array(repeating: 0, count: demandCapacity)
        planner = stream.planner()
        pending.reserveCapacity(1024)
        pieces.reserveCapacity(1024)
    }

    /// The slot pool for `budgetBytes`: each slot holds the largest frame actually present
    /// decompressed (a shard's frames hold `min(tokens_per_frame, token_count)` tokens at most, whatever
    /// `tokens_per_frame` declares) and the largest compressed one, both rounded up to 64 bytes; at
    /// least two slots, and never more than the stream has frames.
    static func sizing(stream: GlobalStream, budgetBytes: Int) -> (frameBytes: Int, scratchBytes: Int, slots: Int) {
        let shards = stream.datasets.flatMap(\.shards)
        let frame = ((shards.map { largestFrameBytes($0) }.max() ?? 64) + 63) & ~63
        let scratch = ((shards.map(\.largestFrame).max() ?? 64) + 63) & ~63
        let frameCount = shards.reduce(0) { $0 + $1.metadata.frameCount }
        return (frame, scratch, max(2, min(frameCount, budgetBytes / (frame + scratch))))
    }

    /// Decompressed bytes of `shard`'s largest frame (`Int.max` if that does not fit an `Int`).
    public static func largestFrameBytes(_ shard: ShardReader) -> Int {
        let tokens = min(UInt64(max(0, shard.metadata.tokensPerFrame)), shard.metadata.tokenCount)
        let (bytes, overflow) = tokens.multipliedReportingOverflow(by: UInt64(shard.metadata.tokenWidth.bytes))
        return overflow || bytes > UInt64(Int.max / 2) ? Int.max / 2 : Int(bytes)
    }

    /// The bytes a preloader with `budgetBytes` holds resident, allocated once at its start.
    public static func residentBytes(stream: GlobalStream, budgetBytes: Int) -> Int {
        let (frame, scratch, slots) = sizing(stream: stream, budgetBytes: budgetBytes)
        return slots * (frame + scratch)
    }

    deinit {
        jobs.waitForIdle()
        storage.deallocate()
    }

    public func frame(_ key: FrameKey) throws(ShardError) -> UnsafeRawBufferPointer {
        if let current, current.key == key { return bytes(of: current.slot, key: key) }
        if let current {
            refs[current.slot] -= 1
            self.current = nil
        }
        try topUp()
        precondition(demandCount > 0 && demandKeys[demandHead] == key,
                     "preloader: the packer asked for \(key), the plan says \(demandCount > 0 ? "\(demandKeys[demandHead])" : "nothing")")
        let slot = demandSlots[demandHead]
        demandHead = (demandHead + 1) % demandKeys.count
        demandCount -= 1
        current = (key, slot)
        if let error = jobs.wait(slot) {
            // Forget the slot so that a retry decompresses again.
            map[key] = nil
            slotKey[slot] = nil
            throw error
        }
        try topUp()
        return bytes(of: slot, key: key)
    }

    private func bytes(of slot: Int, key: FrameKey) -> UnsafeRawBufferPointer {
        let reader = stream.datasets[Int(key.dataset)].shards[Int(key.shard)]
        let count = Int(reader.metadata.tokenRange(ofFrame: Int(key.frame)).count) * reader.metadata.tokenWidth.bytes
        let start = slot * (frameBytes + scratchBytes)
        return UnsafeRawBufferPointer(rebasing: storage[start ..< start + count])
    }

    /// Extends the demand while there is room in it and a slot for its next new frame.
    /// - Throws: `ShardError` when planning the next step needs an index page that cannot be read.
    private func topUp() throws(ShardError) {
        while demandCount < demandKeys.count, let key = try peekDemand() {
            let slot: Int
            if let cached = map[key] {
                slot = cached
            } else {
                guard let free = freeSlot() else { return }
                if let old = slotKey[free] { map[old] = nil }
                slotKey[free] = key
                map[key] = free
                slot = free
                startJob(slot: free, key: key)
            }
            refs[slot] += 1
            clock += 1
            lastUse[slot] = clock
            let tail = (demandHead + demandCount) % demandKeys.count
            demandKeys[tail] = key
            demandSlots[tail] = slot
            demandCount += 1
            pendingIndex += 1
        }
    }

    /// The least recently used slot no demand refers to.
    private func freeSlot() -> Int? {
        var best: Int?
        for s in 0 ..< slotCount where refs[s] == 0 {
            if best == nil || lastUse[s] < lastUse[best!] { best = s }
        }
        return best
    }

    private func startJob(slot: Int, key: FrameKey) {
        let reader = stream.datasets[Int(key.dataset)].shards[Int(key.shard)]
        let start = slot * (frameBytes + scratchBytes)
        let destination = UnsafeMutableRawBufferPointer(rebasing: storage[start ..< start + frameBytes])
        let scratch = UnsafeMutableRawBufferPointer(rebasing: storage[start + frameBytes ..< start + frameBytes + scratchBytes])
        jobs.start(slot: slot, reader: reader, frame: Int(key.frame), destination: destination, scratch: scratch)
    }

    /// The next frame of the demand, generating the next step's frames when needed; nil at the end of the run.
    private func peekDemand() throws(ShardError) -> FrameKey? {
        while pendingIndex >= pending.count {
            guard nextStep < stepCount else { return nil }
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
        }
        return pending[pendingIndex]
    }
}

/// The decompression jobs of a slot pool: per slot a state and an error; a small pool of zstd
/// decompression contexts shared by the jobs (a context holds ~100 KiB plus its window buffers, so
/// one per slot would cost more than the budget's frames for small frames).
///
/// `@unchecked Sendable`: slot `s`'s error is touched by at most one job at a time (a slot is given
/// a new job only after the packer has waited for the previous one), and the packer reads the error
/// only after an acquiring load of the state the job stored with release. A decompression context
/// is used by the one job that took its index from `idleContexts` until it puts the index back
/// (the queue's acquire/release hand-over orders the uses).
private final class SlotJobs: @unchecked Sendable {
    private static let idle = 0, loading = 1, ready = 2, failed = 3
    private let states: UnsafeMutablePointer<Atomic<Int>>
    private let count: Int
    private let decompressors: [ZstdDecompressor]
    private let idleContexts: SlotQueue
    /// Per slot, the error of its last job; written by that job, read by the packer after the state.
    private let errors: UnsafeMutablePointer<ShardError?>
    private let inFlight = Atomic<Int>(0)
    private let queue = DispatchQueue.global(qos: .userInitiated)

    init(slotCount: Int) {
        count = slotCount
        states = .allocate(capacity: slotCount)
        for s in 0 ..< slotCount { (states + s).initialize(to: Atomic(Self.idle)) }
        // Jobs run on the global concurrent queue, at most about one per core at a time.
        var contexts = 1
        while contexts < min(slotCount, 2 * max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))) { contexts <<= 1 }
        decompressors = (0 ..< contexts).map { _ in ZstdDecompressor() }
        idleContexts = SlotQueue(capacity: contexts)
        for c in 0 ..< contexts { _ = idleContexts.enqueue(SlotQueue.Entry(slot: c, length: 0)) }
        errors = .allocate(capacity: slotCount)
        errors.initialize(repeating: nil, count: slotCount)
    }

    deinit {
        states.deinitialize(count: count)
        states.deallocate()
        errors.deinitialize(count: count)
        errors.deallocate()
    }

    func start(slot: Int, reader: ShardReader, frame: Int, destination: UnsafeMutableRawBufferPointer,
               scratch: UnsafeMutableRawBufferPointer) {
        states[slot].store(Self.loading, ordering: .relaxed)
        inFlight.add(1, ordering: .relaxed)
        let job = Job(owner: self, slot: slot, reader: reader, frame: frame, destination: destination, scratch: scratch)
        queue.async { job.run() }
    }

    fileprivate func run(_ job: Job) {
        var backoff = Backoff()
        var taken = idleContexts.dequeue()
        while taken == nil {
            backoff.wait()
            taken = idleContexts.dequeue()
        }
        let context = taken!.entry.slot
        defer {
            // The queue can report "full" for a moment while a peer is mid-dequeue (see BatchRing, invariant 2a).
            var returning = Backoff()
            while idleContexts.enqueue(SlotQueue.Entry(slot: context, length: 0)) == nil { returning.wait() }
        }
        do {
            try job.reader.decodeFrame(job.frame, into: job.destination, scratch: job.scratch, decompressor: decompressors[context])
            errors[job.slot] = nil
            states[job.slot].store(Self.ready, ordering: .releasing)
        } catch {
            errors[job.slot] = error
            states[job.slot].store(Self.failed, ordering: .releasing)
        }
        inFlight.subtract(1, ordering: .releasing)
    }

    /// Waits until slot's job has finished; returns its error, if any.
    func wait(_ slot: Int) -> ShardError? {
        var spins = 0
        while true {
            let state = states[slot].load(ordering: .acquiring)
            if state == Self.ready || state == Self.idle { return nil }
            if state == Self.failed { return errors[slot] }
            spins += 1
            if spins < 64 { continue }
            if spins < 256 { sched_yield(); continue }
            usleep(50)
        }
    }

    func waitForIdle() {
        while inFlight.load(ordering: .acquiring) > 0 { usleep(100) }
    }

    fileprivate struct Job: @unchecked Sendable {
        let owner: SlotJobs
        let slot: Int
        let reader: ShardReader
        let frame: Int
        let destination: UnsafeMutableRawBufferPointer
        let scratch: UnsafeMutableRawBufferPointer
        func run() { owner.run(self) }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
