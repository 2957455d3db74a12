import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What identifies a shard file's content cheaply: its size, modification time and inode. A
/// manifest entry is trusted only while the file's size and modification time still match; a
/// descriptor reopened for a shard must have the same inode and size as when the shard was opened.
public struct FileIdentity: Sendable, Hashable {
    public var size: UInt64
    /// Modification time in nanoseconds since the epoch.
    public var modificationTime: Int64
    public var inode: UInt64

    public init(size: UInt64, modificationTime: Int64, inode: UInt64) {
        self.size = size
        self.modificationTime = modificationTime
        self.inode = inode
    }

    /// The identity of an open file (`fstat`).
    /// - Throws: the `Errno` of `fstat`.
    static func of(_ file: FileDescriptor) throws(Errno) -> FileIdentity {
        var status = stat()
        guard fstat(file.rawValue, &status) == 0 else { throw Errno(rawValue: errno) }
        return FileIdentity(status)
    }

    /// The identity of the file at `path` (`stat`, following links), or the `Errno` of `stat`.
    public static func of(path: String) -> Result<FileIdentity, Errno> {
        var status = stat()
        guard stat(path, &status) == 0 else { return .failure(Errno(rawValue: errno)) }
        return .success(FileIdentity(status))
    }

    /// The identity of the file `name` in the open directory `directory` (`fstatat`, following links:
    /// resolves one path component, not the whole path).
    public static func of(name: String, inDirectory directory: FileDescriptor) -> Result<FileIdentity, Errno> {
        var status = stat()
        guard fstatat(directory.rawValue, name, &status, 0) == 0 else { return .failure(Errno(rawValue: errno)) }
        return .success(FileIdentity(status))
    }

    private init(_ status: stat) {
        #if canImport(Darwin)
        let time = status.st_mtimespec
        #else
        let time = status.st_mtim
        #endif
        self.init(size: UInt64(max(0, status.st_size)), modificationTime: Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec),
                  inode: UInt64(status.st_ino))
    }
}
