#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why a file could not be written atomically: the step, the path and `strerror(errno)`.
public struct AtomicFileError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The one way the daemon writes a file in its state directory (cursors, stats.json, best-fit row
/// caches): a temporary file with an unpredictable name in the same folder, created exclusively
/// (`O_CREAT|O_EXCL|O_NOFOLLOW`, so a file or symlink planted by another user is never opened,
/// followed or truncated), written whole, `fsync`ed, then `rename`d over `path`. Readers see the old
/// file or the new one, never a part; concurrent writers of one path each use their own temporary
/// file and the last rename wins.
public enum AtomicFile {
    /// Writes `bytes` to `path` (mode 0644) as described above; the temporary file is removed on failure.
    /// - Throws: `AtomicFileError` naming the failed step and the file.
    public static func write(_ bytes: [UInt8], to path: String) throws(AtomicFileError) {
        var temporary = ""
        var fd: Int32 = -1
        for _ in 0 ..< 16 {
            temporary = path + ".tmp-" + String(UInt64.random(in: 0 ... .max), radix: 16)
            fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw AtomicFileError("\(temporary): cannot create: \(String(cString: strerror(errno)))") }
        var failure: String?
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { failure = "write failed: \(String(cString: strerror(errno)))"; break }
            done += n
        }
        if failure == nil && fsync(fd) != 0 { failure = "fsync failed: \(String(cString: strerror(errno)))" }
        close(fd)
        if failure == nil && rename(temporary, path) != 0 { failure = "cannot rename \(temporary) into place: \(String(cString: strerror(errno)))" }
        if let failure {
            unlink(temporary)
            throw AtomicFileError("\(path): \(failure)")
        }
    }

    /// The whole content of the file at `path` (as ``write(_:to:)`` left it: the old file or the
    /// new one), nil when there is no such file.
    /// - Throws: `AtomicFileError` naming the file when it cannot be opened or read, or holds more
    ///   than `limit` bytes.
    public static func readIfPresent(_ path: String, atMost limit: Int) throws(AtomicFileError) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw AtomicFileError("\(path): cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let got = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if got == 0 { return bytes }
            guard got > 0 else {
                if errno == EINTR { continue }
                throw AtomicFileError("\(path): read failed at byte \(bytes.count): \(String(cString: strerror(errno)))")
            }
            bytes += chunk[0 ..< got]
            guard bytes.count <= limit else { throw AtomicFileError("\(path): longer than \(limit) bytes") }
        }
    }

    /// Checks that `path` is a directory that no other user can write to: owned by this process's
    /// effective user (or root) and not writable by group or others. A directory another local user
    /// can write lets that user swap the daemon's files.
    /// - Throws: `AtomicFileError` naming the directory, its owner and mode, and what would be right.
    public static func checkPrivateDirectory(_ path: String) throws(AtomicFileError) {
        var info = stat()
        guard stat(path, &info) == 0 else { throw AtomicFileError("\(path): cannot stat: \(String(cString: strerror(errno)))") }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw AtomicFileError("\(path): not a directory") }
        let mode = String(info.st_mode & 0o7777, radix: 8)
        if info.st_uid != geteuid() && info.st_uid != 0 {
            throw AtomicFileError("\(path): owned by uid \(info.st_uid), not by the daemon's user (uid \(geteuid())) or root; "
                + "give the state directory to the daemon's user (chown) or choose another")
        }
        if info.st_mode & 0o022 != 0 {
            throw AtomicFileError("\(path): mode 0\(mode) lets group or others write to it; "
                + "other users could replace the daemon's files there: chmod go-w \(path) (e.g. 0755 or 0700)")
        }
    }
}
