#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The daemon's listening Unix stream socket: bound to a path by the daemon, or passed in by
/// systemd socket activation (`LISTEN_FDS`, `LISTEN_PID`; the first passed descriptor, fd 3).
struct ListeningSocket {
    /// The listening descriptor (non-blocking, close-on-exec).
    let fd: Int32
    /// The socket file the daemon created and removes at exit; nil for an activated socket.
    let ownedPath: String?

    /// Binds `path` with `mode` and listens. A stale socket file nobody listens on is replaced;
    /// a live one is an error (another daemon serves it).
    /// - Throws: `SystemCallError` naming the call and the path.
    static func bind(path: String, mode: UInt32, backlog: Int32 = 128) throws(SystemCallError) -> ListeningSocket {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity else {
            throw SystemCallError("socket path \(path) is longer than \(capacity - 1) bytes", code: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in pathBytes.enumerated() { raw[i] = b }
            raw[pathBytes.count] = 0
        }
        if access(path, F_OK) == 0 {
            if connectsToListener(&address) {
                throw SystemCallError("another process is listening on \(path)", code: EADDRINUSE)
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError("socket") }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            let failure = SystemCallError("bind \(path)")
            _ = Glibc.close(fd)
            throw failure
        }
        guard chmod(path, mode_t(mode)) == 0 else {
            let failure = SystemCallError("chmod \(path) to \(String(mode, radix: 8))")
            _ = Glibc.close(fd)
            unlink(path)
            throw failure
        }
        guard listen(fd, backlog) == 0 else {
            let failure = SystemCallError("listen \(path)")
            _ = Glibc.close(fd)
            unlink(path)
            throw failure
        }
        return ListeningSocket(fd: fd, ownedPath: path)
    }

    /// The socket systemd passed, when `LISTEN_PID` is this process and `LISTEN_FDS` ≥ 1; nil otherwise.
    /// Unsets the variables so child processes do not inherit them.
    static func activated() -> ListeningSocket? {
        guard let pidText = getenv("LISTEN_PID").map({ String(cString: $0) }), let pid = Int32(pidText), pid == getpid(),
              let countText = getenv("LISTEN_FDS").map({ String(cString: $0) }), let count = Int(countText), count >= 1
        else { return nil }
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_FDNAMES")
        let fd: Int32 = 3
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        setNonBlocking(fd)
        return ListeningSocket(fd: fd, ownedPath: nil)
    }

    /// Closes the descriptor and removes the socket file the daemon created.
    func close() {
        _ = Glibc.close(fd)
        if let ownedPath { unlink(ownedPath) }
    }

    private static func connectsToListener(_ address: inout sockaddr_un) -> Bool {
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { return false }
        defer { _ = Glibc.close(probe) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        } == 0
    }
}
