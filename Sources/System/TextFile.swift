import SystemPackage

/// The whole of a text file (invalid UTF-8 repaired with U+FFFD).
/// - Throws: `SystemCallError` naming the call and the file when it cannot be opened or read.
public func readTextFile(_ path: String) throws(SystemCallError) -> String {
    let file: FileDescriptor
    do {
        file = try Errno.rethrowing { try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec]) }
    } catch {
        throw SystemCallError("open \(path)", errno: error)
    }
    defer { try? file.close() }
    do {
        return String(decoding: try file.readToEnd(), as: UTF8.self)
    } catch {
        throw SystemCallError("read \(path)", errno: error)
    }
}

/// Writes `text` to `path` through ``AtomicFile/write(_:to:)`` (exclusive unpredictable temporary
/// file, fsync, rename).
/// - Throws: `AtomicFileError` naming the failed step and file.
public func writeTextFileAtomically(_ path: String, _ text: String) throws(AtomicFileError) {
    try AtomicFile.write(Array(text.utf8), to: path)
}
