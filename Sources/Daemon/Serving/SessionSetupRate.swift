import TokenfeedShards
import TokenfeedSystem

/// How many sessions each client process may set up: a token bucket per peer process (the pid from
/// `SO_PEERCRED`), holding at most `burst` set-ups and refilled at `perSecond` (docs/OPERATIONS.md,
/// "Limits", `--session-rate` and `--session-burst`).
///
/// A session's set-up is work the client cannot be charged for otherwise: its ring is mapped, its packer
/// thread started and the batches its Hello's credits ask for packed, whether or not it reads one. A
/// process that says Hello and closes in a loop would take the cores from every other session; the
/// bucket lets it set up `perSecond` sessions a second (after a first `burst`) and refuses the rest
/// with `busy`, answered only when the process could set up its next session (``Server``), so that a
/// client retrying at once is paced to the rate instead of spinning through refusals. Keyed by process, not by user: a trainer job's ranks and data-loader workers are
/// processes of their own, each with its own bucket, so a job that opens all its sessions at once is
/// never refused, and a process that abuses the daemon does not lock its user's other jobs out.
///
/// Thread-safe (one lock, taken once per Hello; not on the batch path).
final class SessionSetupRate: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: UInt64
    }

    /// Set-ups per second per process; 0: no limit.
    let perSecond: Int
    /// Set-ups a process may make at once (the bucket's size).
    let burst: Int
    /// Buckets of processes that set up a session recently (full buckets are dropped: a process
    /// not seen for `burst / perSecond` seconds starts full again).
    private let buckets = LockedValue<[Int32: Bucket]>([:])
    /// Beyond this many buckets, full ones are dropped at the next set-up.
    private static let pruneThreshold = 1024

    init(perSecond: Int, burst: Int) {
        self.perSecond = perSecond
        self.burst = max(1, burst)
    }

    /// Takes one set-up from the bucket of process `pid` at `now` (monotonic nanoseconds).
    /// - Returns: 0 when the session may be set up (always without a limit); else, the process having
    ///   used its burst, the nanoseconds until its bucket holds one set-up again.
    func take(pid: Int32, now: UInt64) -> UInt64 {
        guard perSecond > 0 else { return 0 }
        let rate = Double(perSecond) / 1e9
        let capacity = Double(burst)
        return buckets.withLock { table in
            if table.count >= Self.pruneThreshold {
                table = table.filter { Double(now &- $0.value.updated) * rate + $0.value.tokens < capacity }
            }
            var bucket = table[pid] ?? Bucket(tokens: capacity, updated: now)
            bucket.tokens = min(capacity, bucket.tokens + Double(now &- bucket.updated) * rate)
            bucket.updated = now
            let allowed = bucket.tokens >= 1
            if allowed { bucket.tokens -= 1 }
            table[pid] = bucket
            return allowed ? 0 : max(1, UInt64((1 - bucket.tokens) / rate))
        }
    }
}
