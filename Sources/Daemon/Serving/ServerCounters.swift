import Synchronization
import TokenfeedShards
import TokenfeedProtocol
import TokenfeedSystem

/// Daemon-wide counters the writers update (atomics only, no lock) and Stats and the metrics read.
final class ServerCounters: @unchecked Sendable {
    /// Tokens served to all sessions (`sequence_length` per row).
    let tokensServed = Atomic<UInt64>(0)
    /// Batch frames sent.
    let batchesServed = Atomic<UInt64>(0)
    /// One past the furthest global sequence any session has received.
    let furthestSequence = Atomic<UInt64>(0)
    /// When the daemon started, monotonic nanoseconds.
    let startedAt: UInt64
    /// When `Server.open` began reading the curriculum (monotonic nanoseconds; `startedAt` when not set).
    let loadStartedAt = Atomic<UInt64>(0)
    /// When the daemon said READY (monotonic nanoseconds; 0 before).
    let readyAt = Atomic<UInt64>(0)
    /// Sessions accepted (Welcome sent) since the daemon started.
    let sessionsOpened = Atomic<UInt64>(0)
    /// Connections accepted since the daemon started (refused peers and `busy` included).
    let connectionsAccepted = Atomic<UInt64>(0)

    /// Error frames sent, by code (index: the code's raw value; the last slot counts codes above it).
    private let errors: UnsafeMutablePointer<Atomic<UInt64>>
    /// Slots in `errors`.
    static let errorSlots = 32

    /// Each job's ranks as this daemon served them (created at a handshake, never on the batch path).
    private let tallies = LockedValue<[RankTally.Key: RankTally]>([:])
    /// Ranks kept in `tallies` at most; beyond, tallies of ranks without a live session are dropped
    /// (oldest session first), so clients that invent job ids cannot grow the table without bound.
    static let maximumTallies = 4096

    init() {
        startedAt = monotonicNanoseconds()
        errors = .allocate(capacity: Self.errorSlots)
        for i in 0 ..< Self.errorSlots { (errors + i).initialize(to: Atomic(0)) }
    }

    deinit {
        errors.deinitialize(count: Self.errorSlots)
        errors.deallocate()
    }

    /// Counts one batch of `rows` rows of `sequenceLength` tokens ending before global sequence `end`.
    func recordBatch(rows: UInt32, sequenceLength: UInt32, endSequence end: UInt64) {
        tokensServed.wrappingAdd(UInt64(rows) * UInt64(sequenceLength), ordering: .relaxed)
        batchesServed.wrappingAdd(1, ordering: .relaxed)
        Self.raise(furthestSequence, to: end)
    }

    /// Counts one Error frame sent with `code`.
    func recordError(_ code: ErrorCode) {
        (errors + min(Int(code.rawValue), Self.errorSlots - 1)).pointee.wrappingAdd(1, ordering: .relaxed)
    }

    /// Error frames sent so far, by code (codes never sent left out).
    func errorCounts() -> [(code: ErrorCode, count: UInt64)] {
        (0 ..< Self.errorSlots).compactMap { i in
            let count = (errors + i).pointee.load(ordering: .relaxed)
            return count == 0 ? nil : (ErrorCode(rawValue: UInt16(i)), count)
        }
    }

    /// The tally of `rank` of `jobID`, made if new; marked live until ``RankTally/sessionEnded()``.
    /// `startSequence` is the session's first global sequence: the rank's stream position until it
    /// receives a batch.
    func tally(jobID: String, rank: UInt32, startSequence: UInt64) -> RankTally {
        let key = RankTally.Key(jobID: jobID, rank: rank)
        return tallies.withLock { table in
            let tally: RankTally
            if let known = table[key] { tally = known } else {
                if table.count >= Self.maximumTallies {
                    let idle = table.values.filter { $0.liveSessions.load(ordering: .relaxed) == 0 }.sorted { $0.order < $1.order }
                    for old in idle.prefix(table.count - Self.maximumTallies + 1) { table[old.key] = nil }
                }
                tally = RankTally(key: key)
                table[key] = tally
            }
            tally.sessionStarted(order: sessionsOpened.wrappingAdd(1, ordering: .relaxed).newValue, startSequence: startSequence)
            return tally
        }
    }

    /// Every tally, sorted by job id and rank.
    func allTallies() -> [RankTally] {
        tallies.withLock { Array($0.values) }.sorted { ($0.key.jobID, $0.key.rank) < ($1.key.jobID, $1.key.rank) }
    }

    /// Raises `atomic` to `value` if it is lower.
    static func raise(_ atomic: borrowing Atomic<UInt64>, to value: UInt64) {
        var current = atomic.load(ordering: .relaxed)
        while current < value {
            let (exchanged, original) = atomic.compareExchange(expected: current, desired: value, ordering: .relaxed)
            if exchanged { break }
            current = original
        }
    }
}

/// What this daemon served to one rank of one job, across that rank's sessions (reconnects add up).
/// The writer of the rank's session updates it with relaxed atomics, once per batch.
final class RankTally: @unchecked Sendable {
    struct Key: Hashable, Sendable {
        var jobID: String
        var rank: UInt32
    }

    let key: Key
    /// Tokens (`sequence_length` per row) and Batch frames sent.
    let tokens = Atomic<UInt64>(0)
    let batches = Atomic<UInt64>(0)
    /// One past the last global sequence of the step last sent to the rank (its stream position,
    /// which counts across daemon restarts: a resumed session starts at its cursor).
    let endSequence = Atomic<UInt64>(0)
    /// Sessions of the rank open now (replicas count one each).
    let liveSessions = Atomic<Int>(0)
    /// The number of the newest session, for dropping the oldest idle tallies first.
    private let newest = Atomic<UInt64>(0)

    init(key: Key) { self.key = key }

    var order: UInt64 { newest.load(ordering: .relaxed) }

    fileprivate func sessionStarted(order: UInt64, startSequence: UInt64) {
        newest.store(order, ordering: .relaxed)
        liveSessions.wrappingAdd(1, ordering: .relaxed)
        endSequence.store(startSequence, ordering: .relaxed)
    }

    /// One session of the rank ended.
    func sessionEnded() { liveSessions.wrappingSubtract(1, ordering: .relaxed) }

    /// Counts one batch of `rows` rows ending before global sequence `end`.
    func recordBatch(rows: UInt32, sequenceLength: UInt32, endSequence end: UInt64) {
        tokens.wrappingAdd(UInt64(rows) * UInt64(sequenceLength), ordering: .relaxed)
        batches.wrappingAdd(1, ordering: .relaxed)
        ServerCounters.raise(endSequence, to: end)
    }
}
