#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

/// The address of a Unix-domain socket: a filesystem path, or (Linux) a name in the abstract
/// namespace, in a `sockaddr_un`. The one place the package fills or reads a `sockaddr_un`.
///
/// Invariant: `sunPath` and, for a path, its terminating NUL fit in `sun_path` (checked by the
/// initializers), so `bind`/`connect`/`sendto` never see a truncated address.
public struct UnixSocketAddress: Sendable, Hashable, CustomStringConvertible {
    /// The bytes of `sun_path` that matter: the path's UTF-8, or a NUL and the abstract name.
    private let sunPath: [UInt8]

    /// The longest path a `sockaddr_un` holds, in UTF-8 bytes (107 on Linux, 103 on Darwin).
    public static let maximumPathBytes = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// Why a path or name cannot be a socket address.
    public struct PathTooLong: Error, Sendable, Hashable, CustomStringConvertible {
        /// The rejected path (an abstract name with a leading `@`).
        public let path: String
        public init(path: String) { self.path = path }
        public var description: String {
            "socket path \(path) is longer than \(UnixSocketAddress.maximumPathBytes) bytes"
        }
    }

    /// The address of the socket file at `path`.
    /// - Throws: ``PathTooLong`` when `path` does not fit in `sun_path` with its NUL.
    public init(path: String) throws(PathTooLong) {
        guard path.utf8.count <= Self.maximumPathBytes else { throw PathTooLong(path: path) }
        sunPath = Array(path.utf8)
    }

    /// The address of `name` in Linux's abstract namespace (no file; written `@name`, as systemd's
    /// `$NOTIFY_SOCKET` does).
    /// - Throws: ``PathTooLong`` when the name and its leading NUL do not fit in `sun_path`.
    public init(abstractName name: String) throws(PathTooLong) {
        guard name.utf8.count + 1 <= Self.maximumPathBytes + 1 else { throw PathTooLong(path: "@" + name) }
        sunPath = [0] + Array(name.utf8)
    }

    /// Whether the address is an abstract name rather than a file.
    public var isAbstract: Bool { sunPath.first == 0 }

    /// The socket file's path, or `@` and the abstract name.
    public var path: String {
        isAbstract ? "@" + String(decoding: sunPath.dropFirst(), as: UTF8.self) : String(decoding: sunPath, as: UTF8.self)
    }

    public var description: String { path }

    /// The named Unix address `fd` is bound to (getsockname(2)); nil for an unnamed or abstract
    /// socket, one of another family, or a failed call.
    public static func bound(to fd: CInt) -> UnixSocketAddress? {
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard ok == 0, address.sun_family == sa_family_t(AF_UNIX) else { return nil }
        let count = Int(length) - MemoryLayout<sa_family_t>.size
        guard count > 0 else { return nil }
        let bytes = withUnsafeBytes(of: address.sun_path) { Array($0.prefix(min(count, $0.count))) }
        guard bytes.first != 0 else { return nil }
        return try? UnixSocketAddress(path: String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self))
    }

    /// Runs `body` with this address as a `sockaddr` and its length, for bind(2), connect(2) and
    /// sendto(2): the whole `sockaddr_un` for a path, exactly the name's bytes for an abstract name.
    public func withSockAddr<R, E: Error>(
        _ body: (UnsafePointer<sockaddr>, socklen_t) throws(E) -> R
    ) throws(E) -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in sunPath.enumerated() { raw[i] = byte }  // fits: checked by the initializers
        }
        let length = isAbstract ? MemoryLayout<sa_family_t>.size + sunPath.count : MemoryLayout<sockaddr_un>.size
        let result: Result<R, E> = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                Result { () throws(E) in try body(raw, socklen_t(length)) }
            }
        }
        return try result.get()
    }

    /// Binds the socket `fd` to this address.
    /// - Throws: the call's `Errno` (`EADDRINUSE`, `EACCES`, …), captured at once.
    public func bind(_ fd: CInt) throws(Errno) {
        try withSockAddr { (address, length) throws(Errno) in
            guard LibC.bind(fd, address, length) == 0 else { throw Errno.fromCurrentValue() }
        }
    }

    /// Connects the socket `fd` to this address. Not retried on `EINTR`: an interrupted connect(2)
    /// goes on in the background, and calling it again fails with `EALREADY`.
    /// - Throws: the call's `Errno` (`ENOENT`, `ECONNREFUSED`, `EINTR`, …), captured at once.
    public func connect(_ fd: CInt) throws(Errno) {
        try withSockAddr { (address, length) throws(Errno) in
            guard LibC.connect(fd, address, length) == 0 else { throw Errno.fromCurrentValue() }
        }
    }
}
