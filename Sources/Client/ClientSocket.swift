#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage
import TokenfeedProtocol
import TokenfeedSystem

/// A connected, blocking Unix stream socket.
struct ClientSocket {
    let fd: Int32

    /// Connects to `path`.
    /// - Throws: `ClientError` of kind `connectionFailed` naming the path, with the call's `Errno`.
    static func connect(path: String) throws(ClientError) -> ClientSocket {
        let address: UnixSocketAddress
        do { address = try UnixSocketAddress(path: path) } catch {
            throw .connectionFailed(path: path, reason: "socket path longer than \(UnixSocketAddress.maximumPathBytes) bytes")
        }
        let fd: Int32
        do { fd = try systemCall { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) } } catch {
            throw .connectionFailed(path: path, errno: error)
        }
        do { try address.connect(fd) } catch {
            _ = LibC.close(fd)   // the Errno was captured before close(2) could change errno
            throw .connectionFailed(path: path, errno: error)
        }
        return ClientSocket(fd: fd)
    }

    /// Writes all of `bytes` (no SIGPIPE: a closed peer is an error).
    /// - Throws: `ClientError` of kind `io`, with `send`'s `Errno`.
    func write(_ bytes: [UInt8]) throws(ClientError) {
        var sent = 0
        while sent < bytes.count {
            do {
                sent += try systemCall { bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) } }
            } catch {
                throw .io("send", errno: error)
            }
        }
    }

    /// Reads into the decoder exactly what its current frame still needs.
    /// - Returns: the bytes read; 0 at end of stream.
    /// - Throws: `ClientError` of kind `invalidFrame` for a bad header, `io` for a failed read.
    func receive(into decoder: FrameDecoder) throws(ClientError) -> Int {
        // The decoder's callback returns the read's result; a failed read's Errno is kept here,
        // captured by systemCall at once (EINTR retried inside it).
        var failure: Errno?
        let n: Int
        do throws(ProtocolError) {
            n = try decoder.receive { (buffer) -> Int in
                do throws(Errno) { return try systemCall { recv(fd, buffer.baseAddress, buffer.count, 0) } } catch {
                    failure = error
                    return -1
                }
            }
        } catch { throw .invalidFrame(error) }
        if let failure { throw .io("recv", errno: failure) }
        return n
    }

    func close() { _ = LibC.close(fd) }
}
