import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed system call, with the call, its subject and `strerror(errno)`.
public struct SystemCallError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was being done, e.g. "bind /run/tokenfeed.sock".
    public var operation: String
    /// The errno value.
    public var code: Int32

    /// Captures the current `errno` for `operation`.
    public init(_ operation: String, code: Int32 = errno) {
        self.operation = operation
        self.code = code
    }

    public var description: String { "\(operation): \(String(cString: strerror(code)))" }
}

/// The whole of a text file, read with read(2).
/// - Throws: `SystemCallError` when the file cannot be opened or read; a message when it is not UTF-8.
func readTextFile(_ path: String) throws(SystemCallError) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SystemCallError("open \(path)") }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw SystemCallError("read \(path)")
        }
        if n == 0 { break }
        bytes += chunk[0 ..< n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Numbers temporary files, so that concurrent writers of one path never share a temporary file.
private let temporaryFileCounter = Atomic<UInt64>(0)

/// Writes `text` to `path` atomically: a temporary file in the same folder, then rename(2).
/// Concurrent writers of the same path each use their own temporary file; the last rename wins.
/// - Throws: `SystemCallError` naming the failed step.
func writeTextFileAtomically(_ path: String, _ text: String) throws(SystemCallError) {
    let temporary = path + ".partial-\(getpid())-\(temporaryFileCounter.wrappingAdd(1, ordering: .relaxed).oldValue)"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw SystemCallError("open \(temporary)") }
    var bytes = Array(text.utf8)
    var written = 0
    while written < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
        if n < 0 {
            if errno == EINTR { continue }
            let failure = SystemCallError("write \(temporary)")
            close(fd)
            throw failure
        }
        written += n
    }
    close(fd)
    guard rename(temporary, path) == 0 else { throw SystemCallError("rename \(temporary) to \(path)") }
}

/// Nanoseconds of the monotonic clock.
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Sets O_NONBLOCK on `fd`.
func setNonBlocking(_ fd: Int32) {
    let flags = fcntl(fd, F_GETFL)
    _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
}
