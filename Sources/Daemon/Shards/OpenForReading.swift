import SystemPackage

/// Opens `path` read-only (close-on-exec), naming the file in the error.
/// - Throws: `ShardError` "cannot open: <strerror>".
func openForReading(_ path: String) throws(ShardError) -> FileDescriptor {
    do {
        return try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
    } catch {
        throw ShardError(path: path, "cannot open: \(error)")
    }
}
