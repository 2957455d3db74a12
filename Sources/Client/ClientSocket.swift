#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage
import TokenfeedProtocol

/// A connected, blocking Unix stream socket.
struct ClientSocket {
    let fd: Int32

    /// Connects to `path`.
    /// - Throws: `ClientError` of kind `connectionFailed` naming the path, with the call's `Errno`.
    static func connect(path: String) throws(ClientError) -> ClientSocket {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw .connectionFailed(path: path, reason: "socket path longer than \(MemoryLayout.size(ofValue: address.sun_path) - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .connectionFailed(path: path, errno: Errno(rawValue: errno)) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            let failure = Errno(rawValue: errno)   // before close(2) can change errno
            _ = Glibc.close(fd)
            throw .connectionFailed(path: path, errno: failure)
        }
        return ClientSocket(fd: fd)
    }

    /// Writes all of `bytes` (no SIGPIPE: a closed peer is an error).
    /// - Throws: `ClientError` of kind `io`, with `send`'s `Errno`.
    func write(_ bytes: [UInt8]) throws(ClientError) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                let failure = Errno(rawValue: errno)
                if failure == .interrupted { continue }
                throw .io("send", errno: failure)
            }
            sent += n
        }
    }

    /// Reads into the decoder exactly what its current frame still needs.
    /// - Returns: the bytes read; 0 at end of stream.
    /// - Throws: `ClientError` of kind `invalidFrame` for a bad header, `io` for a failed read.
    func receive(into decoder: FrameDecoder) throws(ClientError) -> Int {
        while true {
            var failure: Int32 = 0
            let n: Int
            do {
                n = try decoder.receive { buffer in
                    let got = recv(fd, buffer.baseAddress, buffer.count, 0)
                    if got < 0 { failure = errno }
                    return got
                }
            } catch { throw .invalidFrame(error) }
            if n >= 0 { return n }
            if failure == EINTR { continue }
            throw .io("recv", errno: Errno(rawValue: failure))
        }
    }

    func close() { _ = Glibc.close(fd) }
}
