import Dispatch
import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A dataset folder's manifest, `DIR/tokenfeed.manifest`: per shard its file name, size,
/// modification time, inode and metadata payload (docs/SHARDS.md, "Manifest"), so that a process
/// opens the dataset by reading this one file and stat-ing each shard, without reading any shard.
/// Written by `tokenfeed shard import`, `shard index` and `shard upgrade`; never by the daemon.
///
/// Layout (little-endian): tag `TFMANIF\0`, `u16` version (1), `u16` 0, `u32` shard count, then per
/// shard `u16` name length, name (UTF-8), `u64` size, `i64` modification time (ns), `u64` inode,
/// `u64` metadata frame offset, `u32` payload length, the shard's metadata payload (its own CRC-32
/// included); last a CRC-32 of every byte before it.
public struct DatasetManifest: Sendable, Hashable {
    /// The manifest's file name inside its dataset folder.
    public static let fileName = "tokenfeed.manifest"
    static let tag: [UInt8] = Array("TFMANIF\0".utf8)
    static let version: UInt16 = 1

    /// One shard as the manifest records it.
    public struct Entry: Sendable, Hashable {
        /// The shard's file name inside the folder.
        public var name: String
        public var identity: FileIdentity
        public var metadataOffset: UInt64
        /// The shard's metadata payload, as in the file.
        public var payload: [UInt8]
    }

    /// In file-name order.
    public var entries: [Entry]

    /// The manifest's bytes.
    public func encoded() -> [UInt8] {
        var w = LittleEndianWriter()
        w.append(bytes: Self.tag)
        w.append(Self.version)
        w.append(UInt16(0))
        w.append(UInt32(entries.count))
        for e in entries {
            let name = Array(e.name.utf8)
            w.append(UInt16(name.count))
            w.append(bytes: name)
            w.append(e.identity.size)
            w.append(e.identity.modificationTime)
            w.append(e.identity.inode)
            w.append(e.metadataOffset)
            w.append(UInt32(e.payload.count))
            w.append(bytes: e.payload)
        }
        w.append(crc32(w.bytes))
        return w.bytes
    }

    /// Parses a manifest's bytes.
    /// - Throws: `ShardError` naming `path` and what is wrong (tag, version, checksum, truncation).
    public static func decode(_ bytes: [UInt8], path: String) throws(ShardError) -> DatasetManifest {
        func fail(_ message: String) -> ShardError { ShardError(path: path, "manifest: \(message)") }
        guard bytes.count >= 8 + 2 + 2 + 4 + 4 else { throw fail("\(bytes.count) bytes is too short") }
        return try withBytes(of: bytes) { (b) throws(ShardError) in
            let stored = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: b.count - 4, as: UInt32.self))
            let computed = crc32(UnsafeRawBufferPointer(rebasing: b[..<(b.count - 4)]))
            guard stored == computed else { throw fail(String(format32: "checksum mismatch (stored", stored, ", computed", computed)) }
            var r = LittleEndianReader(UnsafeRawBufferPointer(rebasing: b[..<(b.count - 4)]))
            guard r.readBytes(8) == tag else { throw fail("tag is not TFMANIF") }
            let version = r.read(UInt16.self) ?? 0
            guard version == Self.version else { throw fail("version \(version) is not supported (this build reads \(Self.version))") }
            _ = r.read(UInt16.self)
            let count = Int(r.read(UInt32.self) ?? 0)
            var entries: [Entry] = []
            entries.reserveCapacity(min(count, r.remaining / 38))       // an entry takes at least 38 bytes
            for i in 0 ..< count {
                guard let nameLength = r.read(UInt16.self), let name = r.readBytes(Int(nameLength)),
                      let size = r.read(UInt64.self), let time = r.read(Int64.self), let inode = r.read(UInt64.self),
                      let offset = r.read(UInt64.self), let payloadLength = r.read(UInt32.self),
                      let payload = r.readBytes(Int(payloadLength)) else {
                    throw fail("entry \(i) is truncated")
                }
                // The byte, not `String.contains`: Foundation's overload searches with a locale (a
                // tenth of opening 72 × 1,000 shards in `perf`).
                guard !name.contains(UInt8(ascii: "/")), let text = String(validating: name, as: UTF8.self) else {
                    throw fail("entry \(i): the file name is not a UTF-8 name without /")
                }
                entries.append(Entry(name: text, identity: FileIdentity(size: size, modificationTime: time, inode: inode),
                                     metadataOffset: offset, payload: payload))
            }
            guard r.remaining == 0 else { throw fail("\(r.remaining) bytes follow the last entry") }
            return DatasetManifest(entries: entries)
        }
    }

    /// Reads the manifest of the dataset folder `folder`, or nil when it has none.
    /// - Throws: `ShardError` when it exists but cannot be read or parsed.
    public static func read(folder: String) throws(ShardError) -> DatasetManifest? {
        let path = join(folder, fileName)
        let file: FileDescriptor
        do { file = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec]) } catch Errno.noSuchFileOrDirectory {
            return nil
        } catch {
            throw ShardError(path: path, "cannot open: \(error)")
        }
        defer { try? file.close() }
        let size: UInt64
        do { size = try file.fileSize() } catch { throw ShardError(path: path, "cannot stat: \(error)") }
        guard size < 1 << 32 else { throw ShardError(path: path, "manifest of \(size) bytes is too large") }
        return try decode(try ShardEnvelope.readBytes(file, path, at: 0, count: Int(size)), path: path)
    }

    /// The manifest of the shards at `paths` (all in one folder), reading each one's header, footer
    /// and metadata.
    /// - Throws: `ShardError` naming the first shard that cannot be opened.
    public static func build(shardPaths paths: [String]) throws(ShardError) -> DatasetManifest {
        let results = ParallelResults<Result<Entry, ShardError>>(count: paths.count)
        DispatchQueue.concurrentPerform(iterations: paths.count) { i in
            results.set(i, Result { () throws(ShardError) in try entry(path: paths[i]) })
        }
        var entries: [Entry] = []
        for result in results.values { entries.append(try result.get()) }
        return DatasetManifest(entries: entries)
    }

    /// Opens the shard at `path` (three reads), checks its metadata and returns its manifest entry.
    static func entry(path: String) throws(ShardError) -> Entry {
        let (envelope, _, identity) = try ShardReader.readMetadata(path: path)
        let name = path.split(separator: "/").last.map(String.init) ?? path
        return Entry(name: name, identity: identity, metadataOffset: envelope.metadataOffset, payload: envelope.metadataPayload)
    }

    /// Writes the manifest into `folder` (through `tokenfeed.manifest.partial`, synced, renamed).
    /// - Throws: `ShardError` naming the file when it cannot be written.
    public func write(folder: String) throws(ShardError) {
        let path = Self.join(folder, Self.fileName)
        let partial = path + ".partial"
        let file: FileDescriptor
        do {
            file = try FileDescriptor.open(FilePath(partial), .writeOnly, options: [.create, .truncate, .closeOnExec],
                                           permissions: [.ownerReadWrite, .groupRead, .otherRead])
        } catch { throw ShardError(path: partial, "cannot create: \(error)") }
        var ok = false
        defer {
            try? file.close()
            if !ok { _ = unlink(partial) }
        }
        do { _ = try encoded().withUnsafeBytes { try file.writeAll($0) } } catch {
            throw ShardError(path: partial, "write failed: \(error)")
        }
        guard fsync(file.rawValue) == 0 else { throw ShardError(path: partial, "fsync failed: errno \(errno)") }
        guard rename(partial, path) == 0 else { throw ShardError(path: path, "cannot rename \(partial) into place: errno \(errno)") }
        ok = true
    }

    static func join(_ folder: String, _ name: String) -> String {
        folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }
}
