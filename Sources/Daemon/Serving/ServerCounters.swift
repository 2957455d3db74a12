import Synchronization

/// Daemon-wide counters the writers update (atomics only, no lock) and Stats reads.
final class ServerCounters: Sendable {
    /// Tokens served to all sessions (`sequence_length` per row).
    let tokensServed = Atomic<UInt64>(0)
    /// Batch frames sent.
    let batchesServed = Atomic<UInt64>(0)
    /// One past the furthest global sequence any session has received.
    let furthestSequence = Atomic<UInt64>(0)
    /// When the daemon started, monotonic nanoseconds.
    let startedAt: UInt64

    init() { startedAt = monotonicNanoseconds() }

    /// Counts one batch of `rows` rows of `sequenceLength` tokens ending before global sequence `end`.
    func recordBatch(rows: UInt32, sequenceLength: UInt32, endSequence end: UInt64) {
        tokensServed.wrappingAdd(UInt64(rows) * UInt64(sequenceLength), ordering: .relaxed)
        batchesServed.wrappingAdd(1, ordering: .relaxed)
        var current = furthestSequence.load(ordering: .relaxed)
        while current < end {
            let (exchanged, original) = furthestSequence.compareExchange(expected: current, desired: end, ordering: .relaxed)
            if exchanged { break }
            current = original
        }
    }
}
