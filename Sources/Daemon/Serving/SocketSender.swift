import TokenfeedSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Writes whole frames to a non-blocking stream socket with `sendmsg` (scatter-gather, `MSG_NOSIGNAL`
/// so a vanished peer is an `EPIPE` error, not a signal), waiting in `poll` while the peer's buffer is full.
enum SocketSender {
    /// Sends all bytes of `parts` in order.
    /// - Parameter giveUp: asked every 100 ms while the socket stays full; true abandons the write.
    /// - Returns: success, or the failed call (`EPIPE`/`ECONNRESET` when the peer is gone,
    ///   `ETIMEDOUT` when `giveUp` said so).
    static func sendAll(fd: Int32, _ parts: [UnsafeRawBufferPointer], giveUp: () -> Bool) -> Result<Void, SystemCallError> {
        var vectors = parts.map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
        return vectors.withUnsafeMutableBufferPointer { sendAll(fd: fd, vectors: $0, giveUp: giveUp) }
    }

    /// Sends all bytes described by `vectors` (which it advances in place as bytes go out).
    static func sendAll(fd: Int32, vectors: UnsafeMutableBufferPointer<iovec>, giveUp: () -> Bool) -> Result<Void, SystemCallError> {
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
                var waiting = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                if poll(&waiting, 1, 100) == 0, giveUp() {
                    return .failure(SystemCallError("sendmsg: the peer stopped reading", code: ETIMEDOUT))
                }
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
}
