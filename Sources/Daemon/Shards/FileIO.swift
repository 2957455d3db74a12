import SystemPackage

extension FileDescriptor {
    /// Reads exactly `buffer.count` bytes at `offset`, retrying short reads (EINTR is retried by
    /// swift-system). Returns the number of bytes read, which is smaller only at end of file.
    func readFully(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        var done = 0
        while done < buffer.count {
            let n: Int
            do {
                n = try read(fromAbsoluteOffset: Int64(offset) + Int64(done),
                             into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
            } catch let error as Errno {
                throw error
            } catch {
                throw Errno.ioError
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// The file's size in bytes.
    func fileSize() throws(Errno) -> UInt64 {
        do {
            let end = try seek(offset: 0, from: .end)
            return UInt64(end)
        } catch let error as Errno {
            throw error
        } catch {
            throw Errno.ioError
        }
    }
}

/// Opens `path` read-only, naming the file in the error.
func openForReading(_ path: String) throws(ShardError) -> FileDescriptor {
    do {
        return try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
    } catch {
        throw ShardError(path: path, "cannot open: \(error)")
    }
}
