import TokenfeedShards
import TokenfeedEngine
import TokenfeedProtocol

/// The jobs a daemon serves, keyed by `job_id` (clients that send none share the empty id). The
/// first accepted Hello of a job fixes its shape (world size, per-rank batch size) until every
/// session of the job has gone; a Hello of the job that disagrees gets `job_mismatch`, a rank that
/// is already connected gets `rank_in_use`. Other sessions are unaffected.
///
/// A rank is held by one connection, or by the replicas of one data-parallel rank (tensor/pipeline
/// parallelism: `Hello.replicas` > 1), which share one feed — one packing pass — and each receive
/// every batch. Replicas must agree on `replicas` and on the start step (their cursor); each index
/// is held once. When a replica leaves before its session's end, the others get `replica_lost` and
/// the rank is free again: a tensor-parallel group reconnects together and resumes from the rank's cursor.
///
/// A trainer that crashes and reconnects at once may say Hello before the daemon has read the end
/// of its old connection; so a rank held by a connection whose peer has hung up (or that is
/// already closing) is handed to the new connection, and the old one is closed (for replicas: the
/// old group ends, its live members get `replica_lost`).
final class JobRegistry: Sendable {
    /// The shape every session of a job shares.
    private struct Job {
        var worldSize: UInt32
        var batchSize: UInt32
        var ranks: [UInt32: Holder]
    }

    /// Who holds a rank.
    private enum Holder {
        case single(Connection)
        case replicas(ReplicaSet)
    }

    /// The replicas of one data-parallel rank: how many, where they start, the feed they share and
    /// which connection holds which index.
    private struct ReplicaSet {
        var count: UInt16
        var startStep: UInt64
        var feed: RankFeed
        var members: [UInt16: Connection]
        /// A replica left early: the others are being told, the set takes no new member.
        var failed = false

        var isDying: Bool { failed || members.values.contains { $0.isDefunct } }
    }

    private let jobs = LockedValue<[String: Job]>([:])

    /// The refusal of `hello` by `job`'s shape, if its world or batch size differs.
    private static func shapeMismatch(_ job: Job, _ hello: Hello) -> ProtocolError? {
        guard job.worldSize != hello.worldSize || job.batchSize != hello.batchSize else { return nil }
        return ProtocolError(.jobMismatch,
            "job \"\(hello.jobID)\" is served with world_size \(job.worldSize) and batch_size \(job.batchSize); " +
            "this Hello declares world_size \(hello.worldSize) and batch_size \(hello.batchSize)",
            detail: job.worldSize != hello.worldSize ? "Hello.world_size" : "Hello.batch_size")
    }

    /// Claims `hello.rank` (a Hello with `replicas` 1) in its job for `owner`, fixing the job's shape
    /// if the job has no live session.
    /// - Throws: `job_mismatch` naming both shapes (or `Hello.replicas` when replicas hold the rank),
    ///   `rank_in_use` naming the rank.
    func claim(_ hello: Hello, owner: Connection) throws(ProtocolError) {
        var replaced: [Connection] = []
        var ended: RankFeed?
        let refusal: ProtocolError? = jobs.withLock { jobs in
            guard var job = jobs[hello.jobID] else {
                jobs[hello.jobID] = Job(worldSize: hello.worldSize, batchSize: hello.batchSize, ranks: [hello.rank: .single(owner)])
                return nil
            }
            if let mismatch = Self.shapeMismatch(job, hello) { return mismatch }
            switch job.ranks[hello.rank] {
            case .single(let holder)?:
                guard holder.isDefunct else {
                    return ProtocolError(.rankInUse, "rank \(hello.rank) of job \"\(hello.jobID)\" is already connected", detail: "Hello.rank")
                }
                replaced = [holder]
            case .replicas(let set)?:
                guard set.isDying else {
                    return ProtocolError(.jobMismatch, "rank \(hello.rank) of job \"\(hello.jobID)\" is served to \(set.count) replicas; "
                                         + "this Hello declares replicas 1", detail: "Hello.replicas")
                }
                replaced = Array(set.members.values)
                ended = set.feed
            case nil:
                break
            }
            job.ranks[hello.rank] = .single(owner)
            jobs[hello.jobID] = job
            return nil
        }
        if let refusal { throw refusal }
        finish(replaced: replaced, ended: ended, rank: hello.rank)
    }

    /// Claims replica `hello.replicaIndex` of `hello.rank` (a Hello with `replicas` > 1) for `owner`:
    /// the first replica creates the rank's feed with `makeFeed` (under the registry's lock, so that
    /// the others find it), the others join it.
    /// - Returns: the feed, and whether this call created it (then the caller starts it).
    /// - Throws: `job_mismatch` naming the job's shape, `Hello.replicas` (another replica count, or a
    ///   rank held by a connection of its own) or `Hello.cursor` (another start step); `rank_in_use`
    ///   naming `Hello.replica_index`.
    func claimReplica(_ hello: Hello, startStep: UInt64, owner: Connection,
                      makeFeed: () -> RankFeed) throws(ProtocolError) -> (feed: RankFeed, created: Bool) {
        var replaced: [Connection] = []
        var ended: RankFeed?
        let outcome: Result<(RankFeed, Bool), ProtocolError> = jobs.withLock { jobs in
            var job = jobs[hello.jobID] ?? Job(worldSize: hello.worldSize, batchSize: hello.batchSize, ranks: [:])
            if let mismatch = Self.shapeMismatch(job, hello) { return .failure(mismatch) }
            switch job.ranks[hello.rank] {
            case .single(let holder)?:
                guard holder.isDefunct else {
                    return .failure(ProtocolError(.jobMismatch, "rank \(hello.rank) of job \"\(hello.jobID)\" is served to one connection "
                                                  + "(replicas 1); this Hello declares replicas \(hello.replicas)", detail: "Hello.replicas"))
                }
                replaced = [holder]
            case .replicas(var set)?:
                if set.isDying {
                    replaced = Array(set.members.values)
                    ended = set.feed
                } else {
                    guard set.count == hello.replicas else {
                        return .failure(ProtocolError(.jobMismatch, "rank \(hello.rank) of job \"\(hello.jobID)\" is served to \(set.count) replicas; "
                                                      + "this Hello declares replicas \(hello.replicas)", detail: "Hello.replicas"))
                    }
                    guard set.startStep == startStep else {
                        return .failure(ProtocolError(.jobMismatch, "the replicas of rank \(hello.rank) of job \"\(hello.jobID)\" start at step \(set.startStep); "
                                                      + "this Hello's cursor starts at step \(startStep): every replica resumes from the rank's cursor",
                                                      detail: "Hello.cursor"))
                    }
                    guard set.members[hello.replicaIndex] == nil else {
                        return .failure(ProtocolError(.rankInUse, "replica \(hello.replicaIndex) of rank \(hello.rank) of job \"\(hello.jobID)\" is already connected",
                                                      detail: "Hello.replica_index"))
                    }
                    set.members[hello.replicaIndex] = owner
                    job.ranks[hello.rank] = .replicas(set)
                    jobs[hello.jobID] = job
                    return .success((set.feed, false))
                }
            case nil:
                break
            }
            let feed = makeFeed()
            job.ranks[hello.rank] = .replicas(ReplicaSet(count: hello.replicas, startStep: startStep, feed: feed,
                                                         members: [hello.replicaIndex: owner]))
            jobs[hello.jobID] = job
            return .success((feed, true))
        }
        finish(replaced: replaced, ended: ended, rank: hello.rank)
        switch outcome {
        case .success(let claimed): return claimed
        case .failure(let refusal): throw refusal
        }
    }

    /// Closes the connections a claim replaced (their peers had hung up) and stops a replaced group's feed.
    private func finish(replaced: [Connection], ended: RankFeed?, rank: UInt32) {
        // The replicas are told first: a writer that saw its ring closed before would say end_of_stream.
        defer { ended?.stop() }
        for connection in replaced {
            if ended != nil, !connection.isDefunct {
                connection.endReplicaLost("another replica of rank \(rank) had hung up and the rank was claimed again: "
                                          + "reconnect every replica and resume from the rank's cursor")
            } else {
                connection.close(reason: "its rank was taken over by a new connection (the peer had hung up)")
            }
        }
    }

    /// Releases a rank `owner` claimed with ``claim(_:owner:)`` before its session started.
    func releaseClaim(rank: UInt32, jobID: String, owner: Connection) {
        jobs.withLock { jobs in
            guard var job = jobs[jobID], case .single(let holder)? = job.ranks[rank], holder === owner else { return }
            job.ranks[rank] = nil
            jobs[jobID] = job.ranks.isEmpty ? nil : job
        }
    }

    /// Releases what `owner` claimed for `session` (nothing if another connection has taken it over);
    /// a job whose last rank left is forgotten. A replica that leaves before its session's end ends
    /// the session of the others (`replica_lost`).
    /// - Returns: the step of the rank's cursor: `nextStep` for a session of its own, the smallest
    ///   next step of the replicas (what every one has received) for replicas.
    func release(session: Session, owner: Connection, nextStep: UInt64) -> UInt64 {
        var others: [Connection] = []
        var stopped: RankFeed?
        let step: UInt64 = jobs.withLock { jobs in
            guard var job = jobs[session.jobID] else { return nextStep }
            var step = nextStep
            switch job.ranks[session.rank] {
            case .single(let holder)? where holder === owner:
                job.ranks[session.rank] = nil
            case .replicas(var set)? where set.members[session.replicaIndex] === owner:
                for member in set.members.values { step = min(step, member.writer.nextStep.load(ordering: .relaxed)) }
                set.members[session.replicaIndex] = nil
                if !session.completed.load(ordering: .acquiring), !set.failed {
                    set.failed = true
                    others = Array(set.members.values)
                    stopped = set.feed
                }
                job.ranks[session.rank] = set.members.isEmpty ? nil : .replicas(set)
            default:
                return nextStep
            }
            jobs[session.jobID] = job.ranks.isEmpty ? nil : job
            return step
        }
        for other in others {
            other.endReplicaLost("replica \(session.replicaIndex) of rank \(session.rank) left before the end of the stream; "
                                 + "the rank's session ends for every replica: reconnect them all and resume from the rank's cursor")
        }
        // After telling the others (a writer that saw its ring closed first would say end_of_stream).
        stopped?.stop()
        return step
    }
}
