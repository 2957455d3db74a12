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
    /// - Throws: `ClientError.connectionFailed` naming the path and `strerror`.
    static func connect(path: String) throws(ClientError) -> ClientSocket {
        let address: UnixSocketAddress
        do { address = try UnixSocketAddress(path: path) } catch {
            throw .connectionFailed(path: path, reason: "socket path longer than \(UnixSocketAddress.maximumPathBytes) bytes")
        }
        let fd: Int32
        do { fd = try systemCall { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) } } catch {
            throw .connectionFailed(path: path, reason: error.description)
        }
        do { try address.connect(fd) } catch {
            _ = LibC.close(fd)
            throw .connectionFailed(path: path, reason: error.description)
        }
        return ClientSocket(fd: fd)
    }

    /// Writes all of `bytes` (no SIGPIPE: a closed peer is an error).
    /// - Throws: `ClientError.io`.
    func write(_ bytes: [UInt8]) throws(ClientError) {
        var sent = 0
        while sent < bytes.count {
            do {
                sent += try systemCall { bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) } }
            } catch {
                throw .io("send: \(error)")
            }
        }
    }

    /// Reads into the decoder exactly what its current frame still needs.
    /// - Returns: the bytes read; 0 at end of stream.
    /// - Throws: `ClientError.invalidFrame` for a bad header, `ClientError.io` for a failed read.
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
        if let failure { throw .io("recv: \(failure)") }
        return n
    }

    func close() { _ = LibC.close(fd) }
}
