#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import TokenfeedProtocol
import TokenfeedSystem

/// A minimal training client that allocates nothing per batch: it receives every frame into one
/// buffer allocated up front and returns credit with a frame encoded up front, so that what the
/// probe counts while reading batches is the daemon's allocations.
final class RawBatchReader {
    private let fd: Int32
    private let buffer: UnsafeMutableRawBufferPointer
    private let credit: [UInt8]
    private let creditGroup: Int
    private var sinceCredit = 0
    private var nextStep: UInt64 = 0

    enum Failure: Error, CustomStringConvertible {
        case io(String)
        case protocolViolation(String)
        var description: String {
            switch self {
            case .io(let what), .protocolViolation(let what): what
            }
        }
    }

    /// Connects to `socketPath`, sends a Hello for rank 0 of 1 with `batchSize` rows and `credits`
    /// in flight, and reads the Welcome.
    init(socketPath: String, batchSize: UInt32, credits: UInt32) throws {
        buffer = .allocate(byteCount: 64 << 20, alignment: 64)
        creditGroup = Int(max(1, credits / 2))
        credit = Credit(count: UInt32(creditGroup)).encodeFrame()
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure.io("socket: errno \(errno)") }
        do { try UnixSocketAddress(path: socketPath).connect(fd) } catch {
            throw Failure.io("connect \(socketPath): \(error)")
        }
        try write(Hello(rank: 0, worldSize: 1, batchSize: batchSize, initialCredits: credits, jobID: "allocation-probe")
            .encodeFrame(requestID: 1))
        let (type, _) = try readFrame()
        guard type == MessageType.welcome.rawValue else {
            throw Failure.protocolViolation("expected Welcome (type 2) after Hello, got type \(type)")
        }
    }

    deinit {
        close(fd)
        buffer.deallocate()
    }

    /// Reads the next Batch frame, checks that it carries the next step, and returns credit every
    /// half window. Allocates nothing.
    func readBatch() throws {
        let (type, length) = try readFrame()
        guard type == MessageType.batch.rawValue, length >= 8 else {
            throw Failure.protocolViolation("expected a Batch frame, got type \(type) of \(length) bytes")
        }
        let step = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: FrameHeader.size, as: UInt64.self))
        guard step == nextStep else { throw Failure.protocolViolation("expected step \(nextStep), got \(step)") }
        nextStep += 1
        sinceCredit += 1
        if sinceCredit == creditGroup {
            try write(credit)
            sinceCredit = 0
        }
    }

    /// Says Goodbye(done).
    func finish() throws { try write(Goodbye(reason: .done).encodeFrame()) }

    /// Reads one frame (header and payload) into the buffer; returns its type and payload length.
    private func readFrame() throws -> (type: UInt16, length: Int) {
        try receive(FrameHeader.size, at: 0)
        let type = UInt16(littleEndian: buffer.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        let length = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        guard length <= UInt64(buffer.count - FrameHeader.size) else {
            throw Failure.protocolViolation("a frame of \(length) payload bytes does not fit the probe's buffer")
        }
        try receive(Int(length), at: FrameHeader.size)
        return (type, Int(length))
    }

    private func receive(_ count: Int, at offset: Int) throws {
        var got = 0
        while got < count {
            let n = recv(fd, buffer.baseAddress! + offset + got, count - got, 0)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure.io(n == 0 ? "the daemon closed the connection" : "recv: errno \(errno)") }
            got += n
        }
    }

    private func write(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure.io("send: errno \(errno)") }
            sent += n
        }
    }
}
