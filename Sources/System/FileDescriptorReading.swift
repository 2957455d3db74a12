#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

extension FileDescriptor {
    /// Opens `path` read-only (close-on-exec); nil when there is no such file.
    /// - Throws: the open's `Errno` for any other failure (`EACCES`, `EISDIR`, …).
    public static func openForReadingIfPresent(_ path: String) throws(Errno) -> FileDescriptor? {
        do {
            return try Errno.rethrowing { try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec]) }
        } catch .noSuchFileOrDirectory {
            return nil
        }
    }

    /// Reads exactly `buffer.count` bytes at `offset`, retrying short reads (swift-system retries
    /// EINTR). Returns the number of bytes read, which is smaller only at end of file.
    /// - Throws: the read's `Errno`.
    public func readFully(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        var done = 0
        while done < buffer.count {
            let n = try Errno.rethrowing {
                try read(fromAbsoluteOffset: Int64(offset) + Int64(done),
                         into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads from the current position to the end of the file, or until `limit` bytes are read
    /// (a caller that must refuse a larger file asks for one byte more than it accepts).
    /// - Throws: the read's `Errno`.
    public func readToEnd(atMost limit: Int = .max) throws(Errno) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while bytes.count < limit {
            let wanted = min(chunk.count, limit - bytes.count)
            let read: Result<Int, Errno> = chunk.withUnsafeMutableBytes { buffer in
                Result { () throws(Errno) in
                    try Errno.rethrowing { try self.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<wanted])) }
                }
            }
            let n = try read.get()
            if n == 0 { break }
            bytes += chunk[0 ..< n]
        }
        return bytes
    }

    /// Flushes the file's data and metadata to the device (fsync(2), EINTR retried).
    /// - Throws: the call's `Errno` (`EIO`, `ENOSPC`, …).
    public func sync() throws(Errno) {
        _ = try systemCall { fsync(rawValue) }
    }

    /// The file's size in bytes (seeks to the end).
    /// - Throws: the seek's `Errno`.
    public func fileSize() throws(Errno) -> UInt64 {
        UInt64(try Errno.rethrowing { try seek(offset: 0, from: .end) })
    }
}

extension Errno {
    /// Runs a swift-system call, whose `throws` is untyped although it throws only `Errno`, keeping
    /// the error typed.
    @inlinable
    public static func rethrowing<R>(_ body: () throws -> R) throws(Errno) -> R {
        do {
            return try body()
        } catch let error as Errno {
            throw error
        } catch {
            preconditionFailure("swift-system threw a non-Errno error: \(error)")
        }
    }
}
