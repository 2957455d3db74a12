import SystemPackage
import TokenfeedSystem
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
    /// Device and inode of the socket file the daemon created: at exit the path is removed only if
    /// it still names that inode.
    var ownedInode: (device: UInt64, inode: UInt64)? = nil

    /// Binds `path` with `mode` and listens.
    ///
    /// Whatever is at `path` is looked at with `lstat` (never following a symlink): nothing is fine;
    /// a socket nobody listens on (a connect attempt is refused) is a stale file and is removed;
    /// anything else — a regular file, a directory, a symlink, a live socket, a socket that cannot be
    /// probed — is left untouched and start-up fails naming it. The socket is bound in a private
    /// folder (mode 0700) next to `path`, given `mode` there, and hard-linked to `path` (which fails
    /// rather than replace anything created meanwhile), so `path` never exists with the umask's mode.
    /// - Throws: `SystemCallError` naming the call and the path.
    static func bind(path: String, mode: UInt32, backlog: Int32 = 128) throws(SystemCallError) -> ListeningSocket {
        let maximum = UnixSocketAddress.maximumPathBytes
        guard path.utf8.count <= maximum else {
            throw SystemCallError("socket path \(path) is longer than \(maximum) bytes", code: ENAMETOOLONG)
        }
        try removeStaleSocket(at: path)
        let folder = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        var template = Array(((folder.isEmpty ? "" : folder) + "/.tokenfeedd-XXXXXX").utf8CString)
        let privateFolder: String = try template.withUnsafeMutableBufferPointer { buffer throws(SystemCallError) -> String in
            guard mkdtemp(buffer.baseAddress!) != nil else { throw SystemCallError("mkdtemp next to \(path)") }
            return String(cString: buffer.baseAddress!)
        }
        let privatePath = privateFolder + "/s"
        defer {
            unlink(privatePath)
            rmdir(privateFolder)
        }
        let address: UnixSocketAddress
        do { address = try UnixSocketAddress(path: privatePath) } catch {
            throw SystemCallError("socket path \(path) leaves no room for the private bind folder \(privatePath) within \(maximum) bytes",
                                  code: ENAMETOOLONG)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError("socket") }
        do { try address.bind(fd) } catch {
            _ = LibC.close(fd)
            throw SystemCallError("bind \(privatePath)", errno: error)
        }
        var info = stat()
        guard chmod(privatePath, mode_t(mode)) == 0, lstat(privatePath, &info) == 0 else {
            let failure = SystemCallError("chmod \(privatePath) to \(String(mode, radix: 8))")
            _ = LibC.close(fd)
            throw failure
        }
        guard listen(fd, backlog) == 0 else {
            let failure = SystemCallError("listen \(path)")
            _ = LibC.close(fd)
            throw failure
        }
        guard link(privatePath, path) == 0 else {
            let failure = SystemCallError("link the socket to \(path) (something was created there meanwhile?)")
            _ = LibC.close(fd)
            throw failure
        }
        var socket = ListeningSocket(fd: fd, ownedPath: path)
        socket.ownedInode = (UInt64(info.st_dev), UInt64(info.st_ino))
        return socket
    }

    /// Removes `path` if it is a socket nobody listens on; does nothing if nothing is there.
    /// - Throws: `SystemCallError` naming the file and what it is when it is anything else.
    private static func removeStaleSocket(at path: String) throws(SystemCallError) {
        var info = stat()
        do { _ = try systemCall { lstat(path, &info) } } catch .noSuchFileOrDirectory { return } catch {
            throw SystemCallError("lstat \(path)", errno: error)
        }
        let kind: String
        switch info.st_mode & S_IFMT {
        case S_IFSOCK:
            let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard probe >= 0 else { throw SystemCallError("socket") }
            defer { _ = LibC.close(probe) }
            let address: UnixSocketAddress
            do { address = try UnixSocketAddress(path: path) } catch { throw SystemCallError(error.description, code: ENAMETOOLONG) }
            let refused: Bool
            do throws(Errno) {
                try address.connect(probe)
                refused = false
            } catch .connectionRefused {
                refused = true  // nobody listens: a stale socket file
            } catch {
                throw SystemCallError("\(path) is a socket that could not be probed (connect); refusing to remove it", errno: error)
            }
            guard refused else { throw SystemCallError("another process is listening on \(path)", code: EADDRINUSE) }
            guard unlink(path) == 0 else { throw SystemCallError("remove the stale socket \(path)") }
            return
        case S_IFLNK: kind = "a symbolic link"
        case S_IFREG: kind = "a regular file"
        case S_IFDIR: kind = "a directory"
        default: kind = "not a socket"
        }
        throw SystemCallError("\(path) is \(kind), not a stale socket; refusing to replace it (remove it yourself or choose another --socket)",
                              code: EEXIST)
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

    /// Closes the descriptor and removes the socket file the daemon created — only if the path still
    /// names the inode it bound (a file put there since is left alone).
    func close() {
        _ = LibC.close(fd)
        guard let ownedPath, let ownedInode else { return }
        var info = stat()
        if lstat(ownedPath, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK,
           UInt64(info.st_dev) == ownedInode.device, UInt64(info.st_ino) == ownedInode.inode {
            unlink(ownedPath)
        }
    }
}
