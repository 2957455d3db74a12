#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import TokenfeedProtocol
import TokenfeedSystem

/// A socket-activated daemon that cannot start (bad config, curriculum or shard) answers the
/// connections systemd queued on its socket with a typed Error saying why, instead of letting the
/// trainers see the connection reset when the process exits.
public enum StartupFailureAnswer {
    /// When systemd passed a listening socket: answers every connection that is pending or arrives
    /// until none has come for `quietSeconds` (at most `limitSeconds` in all: the ranks of a node
    /// connect in a burst) with `internal_error` carrying `reason` (truncated to what an Error frame
    /// holds) and closes it. Does nothing without an activated socket.
    /// - Returns: how many connections were answered.
    @discardableResult
    public static func answerPending(reason: String, quietSeconds: Int32 = 2, limitSeconds: UInt64 = 10) -> Int {
        guard let socket = ListeningSocket.activated() else { return 0 }
        defer { socket.close() }
        var text = "tokenfeedd could not start: " + reason
        if text.utf8.count > 4000 { text = String(decoding: text.utf8.prefix(4000), as: UTF8.self) }
        let frame = ErrorMessage(code: .internalError, message: text, detail: "startup").encodeFrame()
        let deadline = monotonicNanoseconds() + limitSeconds * 1_000_000_000
        var answered = 0
        while monotonicNanoseconds() < deadline {
            var waiting = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
            guard poll(&waiting, 1, quietSeconds * 1000) > 0 else { break }
            while true {
                let fd = accept(socket.fd, nil, nil)
                if fd < 0 { break }
                _ = frame.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                shutdown(fd, Int32(SHUT_WR))
                _ = LibC.close(fd)
                answered += 1
            }
        }
        return answered
    }
}
