import Foundation
import TestSupport
import TokenfeedProtocol
import TokenfeedSystem

/// A test peer that writes arbitrary bytes to the daemon and reads its frames: for abusing the
/// protocol (no client library in between).
final class RawConnection {
    let fd: Int32
    private let decoder = FrameDecoder()

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        try UnixSocketAddress(path: path).connect(fd)
        var timeout = timeval(tv_sec: isThreadSanitized ? 25 : 5, tv_usec: 0)   // everything is slower under TSan
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Foundation.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Half-closes the write side (the daemon sees end of stream).
    func finishWriting() { shutdown(fd, Int32(SHUT_WR)) }

    /// The next frame's message, or nil when the daemon closed the connection (or 5 s passed).
    func nextMessage() throws -> Message? { try nextFrame()?.message }

    /// The next frame's request id and message, or nil when the daemon closed the connection (or 5 s passed).
    func nextFrame() throws -> (requestID: UInt32, message: Message)? {
        while true {
            if let frame = try decoder.nextFrame() { return (frame.header.requestID, try frame.message()) }
            let n = try decoder.receive { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
        }
    }

    /// The error the daemon sent, after which it must close the connection.
    func expectErrorThenClose() throws -> ErrorMessage? {
        guard case .error(let error)? = try nextMessage() else { return nil }
        guard try nextMessage() == nil else { return nil }
        return error
    }
}

/// A frame header with any field values.
func rawHeader(magic: [UInt8] = Array("TKFD".utf8), version: UInt16 = 1, type: UInt16, flags: UInt32 = 0,
               requestID: UInt32 = 0, length: UInt64) -> [UInt8] {
    var out = magic
    withUnsafeBytes(of: version.littleEndian) { out += $0 }
    withUnsafeBytes(of: type.littleEndian) { out += $0 }
    withUnsafeBytes(of: flags.littleEndian) { out += $0 }
    withUnsafeBytes(of: requestID.littleEndian) { out += $0 }
    withUnsafeBytes(of: length.littleEndian) { out += $0 }
    return out
}
