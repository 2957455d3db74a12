#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// SIGTERM, SIGINT and SIGHUP, received by the main thread with `sigwait`.
///
/// The three signals are blocked in the main thread before the daemon creates any thread, so every
/// thread inherits the block: the kernel never delivers them to a thread, never discards them as
/// ignored, and a signal sent at any moment — before the socket exists, while sessions start, while
/// the Dispatch pool is busy — stays pending until the waiter takes it. (A Dispatch signal source over
/// `SIG_IGN` loses a signal the kernel hands to a thread that has it unblocked: under load, a SIGTERM
/// sent right after the socket appeared was never handled.)
enum DaemonSignals {
    static let handled: [Int32] = [SIGTERM, SIGINT, SIGHUP]

    /// Blocks the signals in the calling thread; call it first in `run()`, before anything starts a thread.
    static func block() {
        var set = signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits for the signals on the calling thread (the main thread, in place of `dispatchMain()`,
    /// which on Linux unblocks every signal in the main thread) and calls `handler` with each; never returns.
    static func wait(_ handler: (Int32) -> Void) -> Never {
        var set = signalSet()
        while true {
            var number: Int32 = 0
            if sigwait(&set, &number) == 0 { handler(number) }
        }
    }

    static func name(_ number: Int32) -> String {
        number == SIGTERM ? "SIGTERM" : number == SIGINT ? "SIGINT" : number == SIGHUP ? "SIGHUP" : "signal \(number)"
    }

    private static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for number in handled { sigaddset(&set, number) }
        return set
    }
}
