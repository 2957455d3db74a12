#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A value guarded by a `pthread_mutex_t`, for state off the hot path (connection tables, job
/// registries, a feed's failure).
///
/// Why not `Synchronization.Mutex`: on Linux it locks with raw futex calls that ThreadSanitizer does
/// not see, so `swift test --sanitize=thread` reports every access under it as a race (reproduced
/// with Swift 6.3.1). A pthread mutex is intercepted by TSan, so races stay checkable. The hot path
/// (ring, preloader, credits) uses atomics and no lock at all.
///
/// `Sendable` when `Value` is: the lock makes sharing safe only for a value that may cross threads
/// (a class instance reachable from elsewhere stays unguarded).
public final class LockedValue<Value> {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let status = pthread_mutex_init(mutex, nil)
        precondition(status == 0, "pthread_mutex_init failed: \(status)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value.
    @discardableResult
    public func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}

/// Safe to share: every access to `value` holds the mutex, and `Value` itself may cross threads.
extension LockedValue: @unchecked Sendable where Value: Sendable {}
