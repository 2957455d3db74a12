import Logging
import Synchronization
import TokenfeedEngine
import TokenfeedProtocol

/// An accepted session: the Hello's shape, the start position, the rank's feed (its own, or shared
/// by the rank's replicas) and the ring this connection sends from.
final class Session: Sendable {
    let rank: UInt32
    let worldSize: UInt32
    let batchSize: UInt32
    let jobID: String
    let startStep: UInt64
    let feed: RankFeed
    /// Replicas of the rank's session (1: a session of its own) and this connection's index among them.
    let replicas: UInt16
    let replicaIndex: UInt16
    /// The ring this connection's writer drains: the feed's ring for its replica index.
    let ring: BatchRing
    /// Whether the session reached its end for this connection (Goodbye(end_of_stream) or a data
    /// error queued): leaving then does not end the other replicas' session.
    let completed = Atomic<Bool>(false)
    /// Whether another replica left early: the writer sends no Goodbye, the Error `replica_lost` is queued.
    let replicaLost = Atomic<Bool>(false)
    /// The connection's logger with the session's rank (and replica) in its metadata.
    let logger: Logger

    /// - Parameter connectionLogger: the connection's logger, to which the rank (and replica) are added.
    init(hello: Hello, startStep: UInt64, feed: RankFeed, connectionLogger: Logger) {
        rank = hello.rank
        worldSize = hello.worldSize
        batchSize = hello.batchSize
        jobID = hello.jobID
        replicas = hello.replicas
        replicaIndex = hello.replicaIndex
        self.startStep = startStep
        self.feed = feed
        ring = feed.rings[min(Int(hello.replicaIndex), feed.rings.count - 1)]
        var logger = connectionLogger
        logger[metadataKey: "rank"] = "\(hello.rank)"
        if hello.replicas > 1 { logger[metadataKey: "replica"] = "\(hello.replicaIndex)/\(hello.replicas)" }
        self.logger = logger
    }
}

/// Where a Hello starts: the step of its own shape at which the stream continues, checked against
/// the served stream (docs/PROTOCOL.md, "Handshake" and "Cursor").
enum SessionStart {
    /// The start step for `hello`: 0 without a cursor, else the cursor's global sequence divided by
    /// the Hello's global batch.
    /// - Throws: `cursor_fingerprint_mismatch` naming both quarantine digests (checked first), or
    ///   why the stream before the cursor differs (``CursorCompatibility``); `bad_cursor` when the cursor's position is not a step boundary of the Hello's shape or lies
    ///   past the end of the run.
    static func step(for hello: Hello, served: ServedStream) throws(ProtocolError) -> UInt64 {
        guard let cursor = hello.cursor else { return 0 }
        // The quarantine first: when it differs the fingerprint differs too, and this is the reason to name.
        guard cursor.quarantineDigest == served.quarantine.digest else {
            let mine = served.quarantine.isEmpty ? "this daemon has quarantined no shard (digest 0)"
                : "this daemon quarantined \(served.quarantine.entries.count) shard\(served.quarantine.entries.count == 1 ? "" : "s") "
                    + "(digest 0x\(hex16(served.quarantine.digest)): \(served.quarantine.pathList()))"
            let theirs = cursor.quarantineDigest == 0 ? "no quarantined shard (digest 0)" : "quarantine digest 0x\(hex16(cursor.quarantineDigest))"
            throw ProtocolError(.cursorFingerprintMismatch,
                "the cursor was made by a daemon with \(theirs); \(mine): the streams differ, so resuming would not continue the same stream",
                detail: "Hello.cursor.quarantine_digest")
        }
        // Another fingerprint resumes when the stream before the cursor is unchanged (a curriculum
        // that appended stages: CursorCompatibility).
        if case .incompatible(let reason) = CursorCompatibility.check(
            fingerprint: cursor.fingerprint, nextSequence: cursor.nextSequence, served: served.description,
            plan: served.stream.plan, previous: served.recordedDescription(of: cursor.fingerprint)) {
            throw ProtocolError(.cursorFingerprintMismatch, reason, detail: "Hello.cursor.fingerprint")
        }
        guard let step = cursor.resumeStep(worldSize: hello.worldSize, batchSize: hello.batchSize) else {
            throw ProtocolError(.badCursor,
                "the cursor's next sequence \(cursor.nextSequence) is not a step boundary of world_size \(hello.worldSize) × batch_size \(hello.batchSize) " +
                "(global batch \(UInt64(hello.worldSize) * UInt64(hello.batchSize)))", detail: "Hello.cursor.next_sequence")
        }
        let steps = served.stepCount(worldSize: hello.worldSize, batchSize: hello.batchSize)
        guard step <= steps else {
            throw ProtocolError(.badCursor, "the cursor's step \(step) is past the end of the run (\(steps) steps of this shape)",
                                detail: "Hello.cursor.next_step")
        }
        return step
    }
}

/// Sixteen lowercase hex digits.
func hex16(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}
