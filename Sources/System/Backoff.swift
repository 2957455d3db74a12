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
/// - then `usleep`, doubling from 1 µs up to `maximumSleepMicroseconds`;
/// - in a long wait, up to a sixteenth of the time slept so far, at most `idleSleepMicroseconds`: a
///   packer whose client does not read (its ring full for minutes) wakes about 100 times a second,
///   not 4,000, so that hundreds of idle sessions cost no core (issue 8), while the wake-up after a
///   pause stays within about 6 % of the pause.
public struct Backoff {
    /// Immediate retries before the first yield.
    static let spinRounds = 64
    /// `sched_yield()` rounds before the first sleep.
    static let yieldRounds = 16
    /// The longest single sleep, in microseconds.
    static let maximumSleepMicroseconds: UInt32 = 256
    /// The longest single sleep of a long wait, in microseconds.
    static let idleSleepMicroseconds: UInt32 = 10_000

    private var round = 0
    private var sleepMicroseconds: UInt32 = 1
    private var sleptMicroseconds: UInt32 = 0

    /// A fresh schedule (the next wait spins).
    public init() {}

    /// Waits one step of the schedule; each call waits at least as long as the previous one.
    public mutating func wait() {
        if round < Self.spinRounds {
            round += 1
        } else if round < Self.spinRounds + Self.yieldRounds {
            round += 1
            sched_yield()
        } else {
            usleep(sleepMicroseconds)
            sleptMicroseconds = min(sleptMicroseconds &+ sleepMicroseconds, UInt32.max / 2)
            let cap = min(max(Self.maximumSleepMicroseconds, sleptMicroseconds / 16), Self.idleSleepMicroseconds)
            sleepMicroseconds = min(sleepMicroseconds * 2, cap)
        }
    }
}
