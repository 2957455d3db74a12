#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import Synchronization

/// Writes whole frames to one non-blocking stream socket with `sendmsg` (scatter-gather,
/// `MSG_NOSIGNAL` so a vanished peer is an `EPIPE` error, not a signal). While the peer's buffer is
/// full the sending thread sleeps on a semaphore that a `DispatchSourceWrite` signals once the
/// socket is writable: a client that stops reading costs no CPU and no wake-up, and holds no
/// Dispatch thread (the source's handler runs only when the socket drains).
///
/// Give-up: ``giveUp(after:)`` (the connection's teardown) wakes a waiting send; one that still
/// cannot send by then fails with `ETIMEDOUT` ("the peer stopped reading"), so a client that never
/// reads again cannot hold its connection open.
///
/// Threads: ``sendAll(_:)``, ``sendAll(vectors:)`` and ``cancel(then:)`` are called by one thread at a
/// time (the connection's writer); ``giveUp(after:)`` from any thread. The source is armed (resumed)
/// only while a send waits and suspended by its own handler when it fires (no lock, nothing
/// allocated per wait).
final class SocketSender: @unchecked Sendable {
    let fd: Int32
    private let source: any DispatchSourceWrite
    /// Signalled by the source's handler (writable) and by ``giveUp(after:)``; a stale signal only
    /// makes the sender try `sendmsg` once more.
    private let wake = DispatchSemaphore(value: 0)
    /// The source's state (``Arming``); only the sender resumes it, only its handler suspends it.
    private let arming = Atomic<UInt8>(Arming.suspended)
    /// Monotonic nanoseconds after which a send still waiting fails (`.max`: never).
    private let giveUpAt = Atomic<UInt64>(.max)

    /// The write source's states: suspended (idle), armed (resumed, waiting for writability),
    /// suspending (its handler is suspending it), cancelled (the sender is done).
    private enum Arming {
        static let suspended: UInt8 = 0
        static let armed: UInt8 = 1
        static let suspending: UInt8 = 2
        static let cancelled: UInt8 = 3
    }

    /// - Parameters:
    ///   - fd: a connected, non-blocking stream socket.
    ///   - queue: where the write source's handler runs (briefly: it suspends the source and signals).
    init(fd: Int32, queue: DispatchQueue) {
        self.fd = fd
        source = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue)
        // The source holds its handler, and so this sender, until it is cancelled.
        source.setEventHandler { [self] in writable() }
    }

    /// Sends all bytes of `frame`.
    /// - Returns: success, or the failed call (`EPIPE`/`ECONNRESET` when the peer is gone,
    ///   `ETIMEDOUT` when the give-up deadline passed while the socket stayed full).
    func sendAll(_ frame: UnsafeRawBufferPointer) -> Result<Void, SystemCallError> {
        var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: frame.baseAddress), iov_len: frame.count)
        return withUnsafeMutablePointer(to: &vector) { sendAll(vectors: UnsafeMutableBufferPointer(start: $0, count: 1)) }
    }

    /// Sends all bytes described by `vectors` (which it advances in place as bytes go out).
    /// - Returns: as ``sendAll(_:)``.
    func sendAll(vectors: UnsafeMutableBufferPointer<iovec>) -> Result<Void, SystemCallError> {
        var first = 0
        while first < vectors.count, vectors[first].iov_len == 0 { first += 1 }
        while first < vectors.count {
            var header = msghdr()
            header.msg_iov = vectors.baseAddress! + first
            header.msg_iovlen = vectors.count - first
            let n = sendmsg(fd, &header, Int32(MSG_NOSIGNAL))
            if n < 0 {
                let code = errno
                if code == EINTR { continue }
                guard code == EAGAIN || code == EWOULDBLOCK else { return .failure(SystemCallError("sendmsg", code: code)) }
                guard waitUntilWritable() else { return .failure(SystemCallError("sendmsg: the peer stopped reading", code: ETIMEDOUT)) }
                continue
            }
            var sent = n
            while sent > 0 {
                let length = vectors[first].iov_len
                if sent >= length {
                    sent -= length
                    vectors[first].iov_len = 0
                    first += 1
                } else {
                    vectors[first].iov_base += sent
                    vectors[first].iov_len -= sent
                    sent = 0
                }
            }
            while first < vectors.count, vectors[first].iov_len == 0 { first += 1 }
        }
        return .success(())
    }

    /// Makes a send waiting for the socket (now or later) give up `nanoseconds` from now, and wakes it
    /// so that it tries once more first. Any thread; the first call sets the deadline.
    func giveUp(after nanoseconds: UInt64) {
        _ = giveUpAt.compareExchange(expected: .max, desired: monotonicNanoseconds() &+ nanoseconds, ordering: .acquiringAndReleasing)
        wake.signal()
    }

    /// Stops watching the socket (the sender's last call); `then` runs on the source's queue once the
    /// watch is gone, after which the descriptor may be closed.
    func cancel(then finished: @escaping @Sendable () -> Void) {
        source.setCancelHandler(handler: finished)
        while true {
            if arming.compareExchange(expected: Arming.armed, desired: Arming.cancelled, ordering: .acquiringAndReleasing).exchanged {
                source.cancel()
                return
            }
            if arming.compareExchange(expected: Arming.suspended, desired: Arming.cancelled, ordering: .acquiringAndReleasing).exchanged {
                // A suspended source completes its cancellation (and may be released) only once resumed.
                source.cancel()
                source.resume()
                return
            }
            // The handler is suspending the source: a few instructions.
            sched_yield()
        }
    }

    /// The source's handler: the socket is writable. Once is enough: the source is suspended until the
    /// next full socket, then the sender woken.
    private func writable() {
        guard arming.compareExchange(expected: Arming.armed, desired: Arming.suspending, ordering: .acquiringAndReleasing).exchanged
        else { return }
        source.suspend()
        arming.store(Arming.suspended, ordering: .releasing)
        wake.signal()
    }

    /// Arms the write source and sleeps until it fires or ``giveUp(after:)`` wakes the sender.
    /// - Returns: false when the give-up deadline has passed.
    private func waitUntilWritable() -> Bool {
        while true {
            if arming.compareExchange(expected: Arming.suspended, desired: Arming.armed, ordering: .acquiringAndReleasing).exchanged {
                source.resume()
                break
            }
            if arming.load(ordering: .acquiring) == Arming.armed { break }
            sched_yield()      // the handler is suspending the source
        }
        let deadline = giveUpAt.load(ordering: .acquiring)
        if deadline == .max {
            wake.wait()
            return true
        }
        let now = monotonicNanoseconds()
        guard now < deadline else { return false }
        return wake.wait(timeout: .now() + .nanoseconds(Int(min(deadline - now, UInt64(Int.max))))) == .success
            || monotonicNanoseconds() < deadline
    }
}
