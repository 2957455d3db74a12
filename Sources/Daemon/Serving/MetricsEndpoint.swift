#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization
import TokenfeedEngine
import TokenfeedSystem

/// Where `--metrics-listen` serves: an IPv4 address, `[IPv6]` address or `localhost`, and a port.
public struct MetricsAddress: Sendable, Hashable, CustomStringConvertible {
    /// The address as given (`127.0.0.1`, `::1`, …; `localhost` is `127.0.0.1`).
    public var host: String
    public var port: UInt16
    /// Whether `host` is an IPv6 address.
    public var isIPv6: Bool

    /// Parses `ADDR:PORT` (`127.0.0.1:9464`, `[::1]:9464`, `localhost:9464`, `0.0.0.0:9464`).
    /// - Throws: a message saying what is wrong with the text.
    public init(parsing text: String) throws(MetricsAddressError) {
        guard let colon = text.lastIndex(of: ":") else { throw MetricsAddressError("expected ADDR:PORT (e.g. 127.0.0.1:9464), got \"\(text)\"") }
        var host = String(text[..<colon])
        let portText = text[text.index(after: colon)...]
        guard let port = UInt16(portText) else { throw MetricsAddressError("expected a port in 0...65535 (0: any free port) after the last ':', got \"\(portText)\"") }
        isIPv6 = host.hasPrefix("[") && host.hasSuffix("]")
        if isIPv6 { host = String(host.dropFirst().dropLast()) }
        if host == "localhost" { host = "127.0.0.1" }
        var probe = in6_addr()
        guard inet_pton(isIPv6 ? AF_INET6 : AF_INET, host, &probe) == 1 else {
            throw MetricsAddressError("\"\(host)\" is not an IPv4 address, a [bracketed] IPv6 address or localhost")
        }
        self.host = host
        self.port = port
    }

    /// Whether the address is a loopback address (127.0.0.0/8 or ::1): reachable from this node only.
    public var isLoopback: Bool {
        if isIPv6 {
            var address = in6_addr()
            _ = inet_pton(AF_INET6, host, &address)
            return withUnsafeBytes(of: &address) { bytes in bytes.prefix(15).allSatisfy { $0 == 0 } && bytes[15] == 1 }
        }
        return host.hasPrefix("127.")
    }

    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A bad `--metrics-listen` value.
public struct MetricsAddressError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// `GET /metrics` over HTTP/1.1 on a TCP address (`--metrics-listen`), answered on a thread of its
/// own, one connection at a time, then closed (`Connection: close`). It reads at most
/// ``maximumRequestBytes`` of request head within ``requestTimeoutSeconds`` and answers: 200 with the
/// exposition text for `GET`/`HEAD /metrics` (a query string is ignored), 404 for another path, 405
/// (with `Allow: GET, HEAD`) for another method, 400 for a request that is not HTTP/1.x, 431 for a
/// head over the limit, 408 when it does not arrive in time. A request body is never read.
final class MetricsEndpoint: Sendable {
    /// Bytes of request line and headers read at most.
    static let maximumRequestBytes = 8192
    /// Seconds a client has to send its request head, and to take the answer.
    static let requestTimeoutSeconds = 5

    let address: MetricsAddress
    private let fd: Int32
    private let stopping = Atomic<Bool>(false)
    private let render: @Sendable () -> String

    /// Binds and listens on `address`; ``start()`` serves.
    /// - Throws: `SystemCallError` naming the call and the address (address in use, not on this host, …).
    init(address: MetricsAddress, render: @escaping @Sendable () -> String) throws(SystemCallError) {
        self.address = address
        self.render = render
        let family = address.isIPv6 ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError("socket for --metrics-listen \(address)") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound: Int32
        if address.isIPv6 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = address.port.bigEndian
            _ = inet_pton(AF_INET6, address.host, &sa.sin6_addr)
            bound = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = address.port.bigEndian
            _ = inet_pton(AF_INET, address.host, &sa.sin_addr)
            bound = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let error = SystemCallError("bind --metrics-listen \(address)")
            _ = LibC.close(fd)
            throw error
        }
        self.fd = fd
    }

    /// The port actually bound (the one asked for; useful with port numbers chosen by tests).
    var boundPort: UInt16 {
        var sa = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return UInt16(bigEndian: sa.sin6_port)   // sin_port and sin6_port are at the same offset
    }

    /// Serves on a thread of its own until ``stop()``.
    func start() {
        DedicatedThread.run { [self] in
            while !stopping.load(ordering: .acquiring) {
                var waiting = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&waiting, 1, 200) == 1 else { continue }
                let client = accept(fd, nil, nil)
                guard client >= 0 else { continue }
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                answer(client)
                Self.closeGracefully(client)
            }
            _ = LibC.close(fd)
        }
    }

    /// Stops serving and closes the listening socket (within 200 ms).
    func stop() {
        stopping.store(true, ordering: .releasing)
    }

    /// Closes `client` after its answer: shuts down the sending side, then reads and drops what the
    /// client still sends (at most 64 KiB, for at most 1 s), so that unread request bytes do not make
    /// the kernel reset the connection before the client has read the answer.
    private static func closeGracefully(_ client: Int32) {
        _ = shutdown(client, Int32(SHUT_WR))
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        _ = setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var drained = 0
        var sink = [UInt8](repeating: 0, count: 4096)
        while drained < 65536 {
            let n = sink.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            drained += n
        }
        _ = LibC.close(client)
    }

    /// Reads one request head from `client` and answers it.
    private func answer(_ client: Int32) {
        var timeout = timeval(tv_sec: Self.requestTimeoutSeconds, tv_usec: 0)
        _ = setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let deadline = monotonicNanoseconds() + UInt64(Self.requestTimeoutSeconds) * 1_000_000_000
        var head: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1024)
        while !Self.endsHead(head) {
            guard head.count < Self.maximumRequestBytes else { return respond(client, 431, "Request Header Fields Too Large", "request head over \(Self.maximumRequestBytes) bytes\n") }
            guard monotonicNanoseconds() < deadline else { return respond(client, 408, "Request Timeout", "no complete request within \(Self.requestTimeoutSeconds) s\n") }
            // SO_RCVTIMEO makes a read that waited too long fail with EAGAIN: "would block" here.
            let received = try? systemCall(blocking: false) {
                chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, min($0.count, Self.maximumRequestBytes - head.count), 0) }
            }
            guard let received else { return }
            guard case .processed(let n) = received else {
                return respond(client, 408, "Request Timeout", "no complete request within \(Self.requestTimeoutSeconds) s\n")
            }
            guard n > 0 else { return }
            head += chunk[0 ..< n]
        }
        let line = head.prefix { $0 != 0x0D && $0 != 0x0A }.split(separator: 0x20, omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
        guard line.count == 3, line[2].hasPrefix("HTTP/1.") else { return respond(client, 400, "Bad Request", "expected \"GET /metrics HTTP/1.1\"\n") }
        let path = line[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        guard path == "/metrics" else { return respond(client, 404, "Not Found", "tokenfeedd serves GET /metrics only\n") }
        guard line[0] == "GET" || line[0] == "HEAD" else {
            return respond(client, 405, "Method Not Allowed", "only GET and HEAD\n", extraHeaders: "Allow: GET, HEAD\r\n")
        }
        respond(client, 200, "OK", render(), contentType: "text/plain; version=0.0.4; charset=utf-8", bodyToo: line[0] == "GET")
    }

    /// Whether `head` holds a complete request head (an empty line: CR LF CR LF, or LF LF).
    private static func endsHead(_ head: [UInt8]) -> Bool {
        var previous: UInt8 = 0, newlines = 0
        for byte in head {
            if byte == 0x0A { newlines += 1; if newlines == 2 { return true } } else if !(byte == 0x0D && previous == 0x0A) { newlines = 0 }
            previous = byte
        }
        return false
    }

    private func respond(_ client: Int32, _ status: Int, _ reason: String, _ body: String,
                         contentType: String = "text/plain; charset=utf-8", extraHeaders: String = "", bodyToo: Bool = true) {
        let bytes = Array(body.utf8)
        var response = Array(("HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(contentType)\r\nContent-Length: \(bytes.count)\r\n"
                              + extraHeaders + "Connection: close\r\n\r\n").utf8)
        if bodyToo { response += bytes }
        var sent = 0
        while sent < response.count {
            let n = try? systemCall { response.withUnsafeBytes { send(client, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) } }
            guard let n, n > 0 else { return }
            sent += n
        }
    }
}
