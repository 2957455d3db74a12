#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// How a thread waits for a condition that another thread makes true: a bounded spin, then it parks
/// in the kernel until a ``notify()`` — and a ``notify()`` that finds nobody waiting costs one fence
/// and one load (no system call, no lock). The one parker of the engine: the ring's blocking calls,
/// the connection writer's wait for a packed batch, the packer's waits for credit and ring space, the
/// frame cache's waits and the decompression workers' idle wait all use it.
///
/// An event count (Vyukov's; folly's `EventCount` has the same protocol):
///
///     waiter                                   notifier
///     waiters += 1          (announce)         make the condition true (any store)
///     fence (seq_cst)                          fence (seq_cst)
///     key = epoch                              if waiters > 0 {
///     if condition { waiters -= 1; done }          lock; epoch += 1; unlock
///     lock; while epoch == key { sleep }; unlock    broadcast
///     waiters -= 1; check the condition again  }
///
/// Invariants:
/// 1. No lost wake-up. The two fences order the waiter's announcement before its check of the
///    condition and the notifier's store before its check of `waiters`, so at least one side sees the
///    other: either the waiter's check finds the condition true, or the notifier finds `waiters > 0`
///    and moves `epoch` past the waiter's `key`. The waiter compares `epoch` with `key` under the
///    mutex before sleeping on the condition variable, and the notifier moves `epoch` under the same
///    mutex, so the waiter either sees the new epoch or is asleep when the broadcast comes.
/// 2. A notifier that finds `waiters == 0` returns after the fence and the load: the fast path of the
///    ring (a batch published or released while the other side runs) makes no system call and takes
///    no lock. The mutex is taken only when a thread is parked, which enters the kernel anyway.
/// 3. Wake-ups may be spurious (a notify for another condition of the same event count, a timeout):
///    ``wait(until:timeoutNanoseconds:)`` returns only when its condition holds or its deadline has passed.
/// 4. Nothing is allocated after init (the mutex and the condition variable need fixed addresses, so
///    they are allocated once); the condition variable times out on `CLOCK_MONOTONIC`.
///
/// Several conditions may share one event count (a packer waits for ring space, credit and cache
/// pressure on one); every waiter re-checks its own condition after each wake-up.
public final class EventCount: @unchecked Sendable {
    /// Condition checks before the first `sched_yield` (each one call of the condition).
    static let spinRounds = 64
    /// `sched_yield()` rounds, each followed by a check, before parking.
    static let yieldRounds = 4

    private let waiters = Atomic<Int>(0)
    private let epoch = Atomic<UInt64>(0)
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    public init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deinitialize(count: 1)
        condition.deallocate()
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Wakes every thread parked in ``wait(until:timeoutNanoseconds:)`` so that it re-checks its condition. Call
    /// after making a condition true. Without a waiter: a fence and a load, nothing else.
    public func notify() {
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        guard waiters.load(ordering: .relaxed) > 0 else { return }
        pthread_mutex_lock(mutex)
        epoch.wrappingAdd(1, ordering: .relaxed)
        pthread_mutex_unlock(mutex)
        pthread_cond_broadcast(condition)
    }

    /// Waits until `ready()` returns true: checks it, spins (``spinRounds`` checks, then
    /// ``yieldRounds`` `sched_yield`s), then parks until a ``notify()`` and checks again, as often
    /// as it takes. `ready` runs on the caller's thread and must not block.
    ///
    /// - Parameter timeoutNanoseconds: how long to wait at most; `UInt64.max`: for ever.
    /// - Returns: true when `ready()` returned true, false when the timeout passed first.
    @discardableResult
    public func wait(until ready: () -> Bool, timeoutNanoseconds: UInt64 = .max) -> Bool {
        for round in 0 ..< Self.spinRounds + Self.yieldRounds {
            if ready() { return true }
            if round >= Self.spinRounds { sched_yield() }
        }
        let deadline = timeoutNanoseconds == .max ? nil : Self.deadline(after: timeoutNanoseconds)
        while true {
            // Announce, then look again (invariant 1).
            waiters.wrappingAdd(1, ordering: .sequentiallyConsistent)
            atomicMemoryFence(ordering: .sequentiallyConsistent)
            let key = epoch.load(ordering: .relaxed)
            if ready() {
                waiters.wrappingSubtract(1, ordering: .relaxed)
                return true
            }
            let woken = park(while: key, deadline: deadline)
            waiters.wrappingSubtract(1, ordering: .relaxed)
            if ready() { return true }
            if !woken { return false }
        }
    }

    /// Sleeps while `epoch == key`; false when `deadline` (`CLOCK_MONOTONIC`; nil: none) passed first.
    private func park(while key: UInt64, deadline: timespec?) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while epoch.load(ordering: .relaxed) == key {
            if var limit = deadline {
                if pthread_cond_timedwait(condition, mutex, &limit) == ETIMEDOUT {
                    return epoch.load(ordering: .relaxed) != key
                }
            } else {
                pthread_cond_wait(condition, mutex)
            }
        }
        return true
    }

    /// `CLOCK_MONOTONIC` now plus `nanoseconds` (saturating at about 292 years).
    private static func deadline(after nanoseconds: UInt64) -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let total = min(UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec), UInt64(Int64.max) / 2)
            + min(nanoseconds, UInt64(Int64.max) / 2)
        return timespec(tv_sec: Int(total / 1_000_000_000), tv_nsec: Int(total % 1_000_000_000))
    }
}
