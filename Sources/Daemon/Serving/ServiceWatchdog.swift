#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import Synchronization
import TokenfeedSystem

/// systemd's service watchdog and status line (`WatchdogSec=`, sd_watchdog_enabled(3)): when the
/// service manager set `WATCHDOG_USEC` (for this process: `WATCHDOG_PID`, when set, is its pid),
/// every half interval a probe is queued on the accept queue and on Dispatch's global pool (where
/// signals are handled); only when both ran within a quarter interval does the daemon send
/// `WATCHDOG=1`, with a `STATUS=` line (socket, sessions, stage, position). A daemon whose serving
/// queues are wedged stops pinging and systemd restarts it.
final class ServiceWatchdog {
    private let timer: any DispatchSourceTimer
    private let queue = DispatchQueue(label: "tokenfeed.watchdog")

    /// The watchdog interval in microseconds that systemd asks of this process, or nil.
    /// - Parameters: the values of `WATCHDOG_USEC` and `WATCHDOG_PID`.
    static func interval(usec: String?, pid: String?, ownPID: Int32 = getpid()) -> UInt64? {
        guard let usec, let value = UInt64(usec), value > 0 else { return nil }
        if let pid, let target = Int32(pid), target != ownPID { return nil }
        return value
    }

    /// Starts pinging when systemd asked for it (nil otherwise).
    /// - Parameters:
    ///   - probe: the queue whose answering proves the daemon serves (the accept queue).
    ///   - status: the `STATUS=` text, computed at each ping.
    static func start(probe: DispatchQueue, status: @escaping @Sendable () -> String) -> ServiceWatchdog? {
        guard let usec = interval(usec: getenv("WATCHDOG_USEC").map { String(cString: $0) },
                                  pid: getenv("WATCHDOG_PID").map { String(cString: $0) }) else { return nil }
        return ServiceWatchdog(intervalMicroseconds: usec, probe: probe, status: status)
    }

    private init(intervalMicroseconds: UInt64, probe: DispatchQueue, status: @escaping @Sendable () -> String) {
        let period = DispatchTimeInterval.microseconds(Int(min(intervalMicroseconds / 2, UInt64(Int32.max))))
        let patience = DispatchTimeInterval.microseconds(Int(min(intervalMicroseconds / 4, UInt64(Int32.max))))
        timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now(), repeating: period)
        timer.setEventHandler {
            let answered = DispatchSemaphore(value: 0)
            probe.async { answered.signal() }
            DispatchQueue.global().async { answered.signal() }
            let deadline = DispatchTime.now() + patience
            guard answered.wait(timeout: deadline) == .success, answered.wait(timeout: deadline) == .success else { return }
            SystemdNotifier.notify("WATCHDOG=1\nSTATUS=\(status())")
        }
        timer.resume()
    }

    /// Stops pinging (at shutdown).
    func stop() { timer.cancel() }

    /// The path a listening Unix socket is bound to (`getsockname`), or nil (unnamed, abstract, not Unix).
    static func boundPath(fd: Int32) -> String? { UnixSocketAddress.bound(to: fd)?.path }
}

extension Server {
    /// The `STATUS=` text systemd shows: the socket actually served, open connections, the stage of the
    /// furthest sequence served and its position, e.g.
    /// `serving /run/tokenfeed/tokenfeed.sock: 8 connections, stage stable (2 of 3), sequence 1200 of 5000000`.
    func statusLine(socket: String) -> String {
        let position = counters.furthestSequence.load(ordering: .relaxed)
        let plan = stream.stream.plan
        let stages = stream.stream.curriculum.stages
        let stage = stages.isEmpty || plan.totalSequences == 0 ? 0
            : min(plan.stageIndex(ofSequence: min(position, plan.totalSequences - 1)), stages.count - 1)
        let name = stages.isEmpty ? "" : LogEscaping.escaped(stages[stage].name)
        return "serving \(socket): \(connectionCount) connections, stage \(name) (\(stage + 1) of \(stages.count)), "
            + "sequence \(position) of \(plan.totalSequences)"
    }
}
