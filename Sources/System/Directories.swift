#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

/// Creates the directory `path` (mkdir(2), `mode` before the umask); succeeds when a directory or
/// anything else is there already (a later open names what is wrong).
/// - Throws: the call's `Errno` (`EACCES`, `ENOENT` for a missing parent, …).
public func createDirectory(_ path: String, mode: UInt16 = 0o755) throws(Errno) {
    do {
        _ = try systemCall { mkdir(path, mode_t(mode)) }
    } catch .fileExists {
        return
    }
}

/// Creates `path` and every missing parent (`mkdir -p`).
/// - Throws: `SystemCallError` "mkdir <the prefix that failed>" and its `Errno`.
public func createDirectories(_ path: String, mode: UInt16 = 0o755) throws(SystemCallError) {
    var prefix = path.hasPrefix("/") ? "/" : ""
    for component in path.split(separator: "/") {
        prefix += component + "/"
        do { try createDirectory(prefix, mode: mode) } catch { throw SystemCallError("mkdir \(prefix)", errno: error) }
    }
}
