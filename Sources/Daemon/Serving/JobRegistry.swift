import TokenfeedShards
import TokenfeedEngine
import TokenfeedProtocol

/// The jobs a daemon serves, keyed by `job_id` (clients that send none share the empty id). The
/// first accepted Hello of a job fixes its shape (world size, per-rank batch size) until every
/// session of the job has gone; a Hello of the job that disagrees gets `job_mismatch`, a rank that
/// is already connected gets `rank_in_use`. Other sessions are unaffected.
///
/// A trainer that crashes and reconnects at once may say Hello before the daemon has read the end
/// of its old connection; so a rank held by a connection whose peer has hung up (or that is
/// already closing) is handed to the new connection, and the old one is closed.
final class JobRegistry: Sendable {
    /// The shape every session of a job shares.
    private struct Job {
        var worldSize: UInt32
        var batchSize: UInt32
        var ranks: [UInt32: Connection]
    }

    private let jobs = LockedValue<[String: Job]>([:])

    /// Claims `hello.rank` in its job for `owner`, fixing the job's shape if the job has no live session.
    /// - Throws: `job_mismatch` naming both shapes, `rank_in_use` naming the rank.
    func claim(_ hello: Hello, owner: Connection) throws(ProtocolError) {
        var replaced: Connection?
        let refusal: ProtocolError? = jobs.withLock { jobs in
            guard var job = jobs[hello.jobID] else {
                jobs[hello.jobID] = Job(worldSize: hello.worldSize, batchSize: hello.batchSize, ranks: [hello.rank: owner])
                return nil
            }
            guard job.worldSize == hello.worldSize, job.batchSize == hello.batchSize else {
                return ProtocolError(.jobMismatch,
                    "job \"\(hello.jobID)\" is served with world_size \(job.worldSize) and batch_size \(job.batchSize); " +
                    "this Hello declares world_size \(hello.worldSize) and batch_size \(hello.batchSize)",
                    detail: job.worldSize != hello.worldSize ? "Hello.world_size" : "Hello.batch_size")
            }
            if let holder = job.ranks[hello.rank] {
                guard holder.isDefunct else {
                    return ProtocolError(.rankInUse, "rank \(hello.rank) of job \"\(hello.jobID)\" is already connected", detail: "Hello.rank")
                }
                replaced = holder
            }
            job.ranks[hello.rank] = owner
            jobs[hello.jobID] = job
            return nil
        }
        if let refusal { throw refusal }
        replaced?.close(reason: "its rank was taken over by a new connection (the peer had hung up)")
    }

    /// Releases a rank `owner` claimed (nothing if another connection has taken it over); a job whose
    /// last rank left is forgotten.
    func release(rank: UInt32, jobID: String, owner: Connection) {
        jobs.withLock { jobs in
            guard var job = jobs[jobID], job.ranks[rank] === owner else { return }
            job.ranks[rank] = nil
            jobs[jobID] = job.ranks.isEmpty ? nil : job
        }
    }
}
