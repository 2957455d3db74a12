#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

/// Why a file could not be written or read atomically: the step, the path and the error's text.
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
        var created: FileDescriptor?
        for _ in 0 ..< 16 where created == nil {
            temporary = path + ".tmp-" + Hex.padded(UInt64.random(in: 0 ... .max))
            do {
                created = try Errno.rethrowing {
                    try FileDescriptor.open(FilePath(temporary), .writeOnly,
                                            options: [.create, .exclusiveCreate, .noFollow, .closeOnExec],
                                            permissions: FilePermissions(rawValue: 0o644))
                }
            } catch .fileExists {
                continue
            } catch {
                throw AtomicFileError("\(temporary): cannot create: \(error)")
            }
        }
        guard let file = created else { throw AtomicFileError("\(temporary): cannot create: \(Errno.fileExists)") }
        var failure: String?
        do throws(Errno) {
            _ = try Errno.rethrowing { try file.writeAll(bytes) }
        } catch {
            failure = "write failed: \(error)"
        }
        if failure == nil {
            do throws(Errno) { try file.sync() } catch { failure = "fsync failed: \(error)" }
        }
        try? file.close()
        if failure == nil {
            do throws(Errno) { _ = try systemCall { rename(temporary, path) } } catch {
                failure = "cannot rename \(temporary) into place: \(error)"
            }
        }
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
        let opened: FileDescriptor?
        do { opened = try FileDescriptor.openForReadingIfPresent(path) } catch { throw AtomicFileError("\(path): cannot open: \(error)") }
        guard let file = opened else { return nil }
        defer { try? file.close() }
        let bytes: [UInt8]
        do { bytes = try file.readToEnd(atMost: limit + 1) } catch { throw AtomicFileError("\(path): read failed: \(error)") }
        guard bytes.count <= limit else { throw AtomicFileError("\(path): longer than \(limit) bytes") }
        return bytes
    }

    /// Checks that `path` is a directory that no other user can write to: owned by this process's
    /// effective user (or root) and not writable by group or others. A directory another local user
    /// can write lets that user swap the daemon's files.
    /// - Throws: `AtomicFileError` naming the directory, its owner and mode, and what would be right.
    public static func checkPrivateDirectory(_ path: String) throws(AtomicFileError) {
        var info = stat()
        do throws(Errno) { _ = try systemCall { stat(path, &info) } } catch { throw AtomicFileError("\(path): cannot stat: \(error)") }
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
