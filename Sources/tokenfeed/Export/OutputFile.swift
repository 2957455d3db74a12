import SystemPackage
import TokenfeedSystem

/// One file an export writes: created as `PATH.partial`, written through a buffer, and renamed to
/// `PATH` by ``commit()`` after an `fsync` — so a file under its final name is always complete, and
/// an interrupted export leaves only `.partial` files, which `--resume` removes.
final class OutputFile {
    let path: String
    private let partialPath: String
    private var file: FileDescriptor?
    private var buffer: [UInt8] = []
    private let bufferLimit = 1 << 20
    /// Bytes written so far (buffered ones included).
    private(set) var size: UInt64 = 0

    /// Creates (or truncates) `path.partial`.
    /// - Throws: `ExportError` naming the file.
    init(path: String) throws(ExportError) {
        self.path = path
        self.partialPath = path + ".partial"
        do {
            file = try FileDescriptor.open(FilePath(partialPath), .writeOnly, options: [.create, .truncate],
                                           permissions: [.ownerReadWrite, .groupRead, .otherRead])
        } catch {
            throw ExportError("\(partialPath): cannot create: \(error)")
        }
        buffer.reserveCapacity(bufferLimit)
    }

    deinit { abandon() }

    /// Appends raw bytes.
    func write(_ bytes: UnsafeRawBufferPointer) throws(ExportError) {
        if buffer.count + bytes.count > bufferLimit { try flush() }
        if bytes.count >= bufferLimit {
            try writeOut(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
        size += UInt64(bytes.count)
    }

    func write(_ bytes: [UInt8]) throws(ExportError) {
        try rethrowingExportError { try bytes.withUnsafeBytes { try write($0) } }
    }

    func write(_ text: String) throws(ExportError) { try write(Array(text.utf8)) }

    /// Appends little-endian integers.
    func write<T: FixedWidthInteger>(littleEndian values: [T]) throws(ExportError) {
        let stored = values.map(\.littleEndian)
        try rethrowingExportError { try stored.withUnsafeBytes { try write($0) } }
    }

    /// Flushes, syncs and renames the file to its final name.
    /// - Throws: `ExportError` naming the file.
    func commit() throws(ExportError) {
        try flush()
        guard let file else { return }
        self.file = nil
        let synced: Errno?
        do { try file.sync(); synced = nil } catch { synced = error }
        try? file.close()
        if let synced { throw ExportError("\(partialPath): cannot sync: \(synced)") }
        do { _ = try systemCall { rename(partialPath, path) } } catch {
            throw ExportError("\(path): cannot rename \(partialPath) into place: \(error)")
        }
    }

    /// Closes and removes the partial file (after a failure); nothing if already committed.
    func abandon() {
        guard let file else { return }
        self.file = nil
        try? file.close()
        _ = unlink(partialPath)
    }

    private func flush() throws(ExportError) {
        guard !buffer.isEmpty else { return }
        let pending = buffer
        try rethrowingExportError { try pending.withUnsafeBytes { try writeOut($0) } }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeOut(_ bytes: UnsafeRawBufferPointer) throws(ExportError) {
        guard let file else { throw ExportError("\(path): written after commit") }
        do { _ = try file.writeAll(bytes) } catch {
            throw ExportError("\(partialPath): write failed: \(error)")
        }
    }
}

/// Runs `body`, whose only errors are `ExportError`s thrown through an untyped closure.
private func rethrowingExportError(_ body: () throws -> Void) throws(ExportError) {
    do { try body() } catch let error as ExportError { throw error } catch { throw ExportError("\(error)") }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
