import Synchronization
import TokenfeedProtocol

/// The one job a daemon serves at a time. The first accepted Hello fixes its shape (world size,
/// per-rank batch size) and job id until every session has gone; a Hello that disagrees gets
/// `job_mismatch`, a rank already connected gets `rank_in_use`. Other sessions are unaffected.
final class JobRegistry: Sendable {
    /// The shape every session of the current job shares.
    struct Shape: Sendable, Hashable {
        var worldSize: UInt32
        var batchSize: UInt32
        var jobID: String
    }

    private struct State {
        var shape: Shape?
        var ranks: Set<UInt32> = []
    }

    private let state = Mutex(State())

    /// Claims `hello.rank` for the job, fixing the job's shape if no session is live.
    /// - Throws: `job_mismatch` naming both shapes, `rank_in_use` naming the rank.
    func claim(_ hello: Hello) throws(ProtocolError) {
        let result: ProtocolError? = state.withLock { state in
            let wanted = Shape(worldSize: hello.worldSize, batchSize: hello.batchSize, jobID: hello.jobID)
            if let shape = state.shape, shape != wanted {
                return ProtocolError(.jobMismatch,
                    "this daemon serves job \"\(shape.jobID)\" with world_size \(shape.worldSize) and batch_size \(shape.batchSize); " +
                    "the Hello asks for job \"\(hello.jobID)\" with world_size \(hello.worldSize) and batch_size \(hello.batchSize)",
                    detail: shape.worldSize != hello.worldSize ? "Hello.world_size" : shape.batchSize != hello.batchSize ? "Hello.batch_size" : "Hello.job_id")
            }
            guard !state.ranks.contains(hello.rank) else {
                return ProtocolError(.rankInUse, "rank \(hello.rank) of job \"\(hello.jobID)\" is already connected", detail: "Hello.rank")
            }
            state.shape = wanted
            state.ranks.insert(hello.rank)
            return nil
        }
        if let result { throw result }
    }

    /// Releases a rank claimed by `claim`; the job's shape is forgotten when no rank is left.
    func release(rank: UInt32) {
        state.withLock { state in
            state.ranks.remove(rank)
            if state.ranks.isEmpty { state.shape = nil }
        }
    }
}
