#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch

/// A detached thread of its own for work that blocks or waits for a long time (a session's packer
/// waiting for ring space, a session's writer waiting for its client), so that a waiting session
/// never holds one of the Dispatch pool's threads, which accepting, reading and Stats need.
public enum DedicatedThread {
    private final class Work {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Runs `body` on a new detached thread (on a global Dispatch queue if no thread can be created).
    public static func run(_ body: @escaping @Sendable () -> Void) {
        let work = Unmanaged.passRetained(Work(body))
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let result = pthread_create(&thread, &attributes, { raw in
            guard let raw else { return nil }
            Unmanaged<Work>.fromOpaque(raw).takeRetainedValue().body()
            return nil
        }, work.toOpaque())
        pthread_attr_destroy(&attributes)
        if result != 0 {
            work.release()
            DispatchQueue.global().async(execute: body)
        }
    }
}
