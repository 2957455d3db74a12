#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The waiting strategy of the ring's blocking calls: spin, then yield the core, then sleep.
///
/// Used only on the slow path, when a producer finds no free slot or a consumer finds no
/// full one. It holds no lock and parks nothing on a kernel object: every step re-reads the
/// ring's atomics, so a waiter that misses nothing can never miss a wake-up (there is no
/// wake-up to miss). The cost is latency on wake: at most the current sleep, capped at
/// `maximumSleepMicroseconds`.
///
/// The schedule, chosen for a machine whose cores are shared with other work:
/// - `spinRounds` immediate retries (each retry is one atomic load in the caller);
/// - then `yieldRounds` calls to `sched_yield()`, which lets the thread that would fill
///   or drain the ring run on this core;
/// - then `usleep`, doubling from 1 µs up to `maximumSleepMicroseconds`.
struct Backoff {
    /// Immediate retries before the first yield.
    static let spinRounds = 64
    /// `sched_yield()` rounds before the first sleep.
    static let yieldRounds = 16
    /// The longest single sleep, in microseconds.
    static let maximumSleepMicroseconds: UInt32 = 256

    private var round = 0
    private var sleepMicroseconds: UInt32 = 1

    /// Waits one step of the schedule; each call waits at least as long as the previous one.
    mutating func wait() {
        if round < Self.spinRounds {
            round += 1
        } else if round < Self.spinRounds + Self.yieldRounds {
            round += 1
            sched_yield()
        } else {
            usleep(sleepMicroseconds)
            sleepMicroseconds = min(sleepMicroseconds * 2, Self.maximumSleepMicroseconds)
        }
    }
}
