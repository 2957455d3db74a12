import SystemPackage
import TokenfeedMixing
import TokenfeedShards
import TokenfeedSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Per-shard bestfit row counts and group checkpoints of datasets, persisted in a cache directory:
/// one small file per dataset folder, row length and look-ahead, so that counting (docs/PACKING.md,
/// "the cost of a jump") is done once per dataset, not once per process.
///
/// A file maps ``BestFitShardKey`` (a fingerprint of a shard's content) to the rows the shard packs
/// into and its ``BestFitCheckpoints`` (the rows before every K-th group). A count is only ever used
/// for a shard whose key matches, so a file from another dataset, another row length or look-ahead,
/// or from before a shard was rewritten can make a planner count again, never compute a wrong row.
/// Version 2, all integers little-endian:
///
///     offset 0        8 bytes   tag "TFBFROWS"
///            8        u16       version (2)
///           10        u16       flags (0)
///           12        u32       K, groups per checkpoint
///           16        u64       row length R (sequence length + 1)
///           24        u64       look-ahead
///           32        u64       entry count n
///           40        n × 48    entries: u64 token count, u64 document count, u32 metadata CRC-32,
///                               u32 frame-table CRC-32, u32 document-end CRC-32, u32 checkpoint count c,
///                               u64 rows, u64 offset of the shard's checkpoint record (0 when c = 0)
///      40 + 48n       u32       CRC-32 of bytes [0, 40 + 48n)
///      44 + 48n       …         checkpoint records, in entry order, of the entries with c > 0: the
///                               shard's key (the entry's first 28 bytes), c × u64 (rows before group
///                               j·K, j = 1…c), u32 CRC-32 of the record's bytes before it
///
/// The header and entries are read when a dataset is opened (48 bytes a shard); a checkpoint record
/// only when a planner enters its shard (``readCheckpoints(path:key:offset:count:)``), and it is
/// checked on its own (key and CRC), so a file replaced meanwhile by another process cannot give a
/// wrong checkpoint. Files are written to a temporary name in the directory and renamed into place,
/// so a reader sees a whole file or none; several processes sharing the directory may each write it
/// (the last rename wins, and any of the files is right).
struct BestFitRowStore: Sendable {
    let directory: String
    let rowTokens: Int
    let lookahead: Int
    /// K: groups between checkpoints.
    let groupsPerCheckpoint: Int

    static let tag: [UInt8] = Array("TFBFROWS".utf8)
    static let version: UInt16 = 2
    static let headerSize = 40
    static let entrySize = 48
    static let keySize = 28
    /// Files larger than this many entries are refused as corrupt (a dataset of 16 Mi shards).
    static let maxEntries: UInt64 = 1 << 24
    /// Checkpoint records longer than this many checkpoints are refused as corrupt (2³² documents at K·look-ahead = 1).
    static let maxCheckpoints: UInt64 = 1 << 32

    /// One shard's entry: its rows, and where its checkpoints are.
    struct Entry: Sendable, Hashable {
        var rows: UInt64
        var checkpointCount: Int
        /// Offset of its checkpoint record in the file (0 when `checkpointCount` is 0).
        var checkpointOffset: UInt64
    }

    init(directory: String, rowTokens: Int, lookahead: Int,
         groupsPerCheckpoint: Int? = nil) {
        self.directory = directory
        self.rowTokens = rowTokens
        self.lookahead = lookahead
        self.groupsPerCheckpoint = groupsPerCheckpoint ?? BestFitCheckpoints.groupsPerCheckpoint(lookahead: lookahead)
    }

    /// The file holding the counts of the dataset in `folder`: named after the folder's last component,
    /// a hash of its canonical path, the row length and the look-ahead.
    func path(forDatasetFolder folder: String) -> String {
        var canonical = folder
        if let resolved = realpath(folder, nil) {
            canonical = String(cString: resolved)
            free(resolved)
        }
        let last = canonical.split(separator: "/").last.map(String.init) ?? "root"
        let name = String(last.unicodeScalars.prefix(40).map { scalar -> Character in
            let c = Character(scalar)
            return c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_" || c == ".") ? c : "_"
        })
        return directory + "/bestfit-rows-\(name)-\(Hex.padded(FNV1a64.hash(canonical)))-r\(rowTokens)-la\(lookahead).bin"
    }

    /// Reads the entries of the file at `path` (its header and entries, not its checkpoint records);
    /// nil when there is no such file.
    /// - Throws: `EngineError` naming the file and what is wrong with it: unreadable, truncated or
    ///   too long, a wrong tag, an unsupported version, a checksum mismatch, another row length,
    ///   look-ahead or checkpoint spacing than this store's, or checkpoint records that do not tile
    ///   the rest of the file.
    func load(path: String) throws(EngineError) -> [BestFitShardKey: Entry]? {
        func fail(_ message: String) -> EngineError { EngineError("\(path): \(message)") }
        let opened: FileDescriptor?
        do { opened = try FileDescriptor.openForReadingIfPresent(path) } catch { throw fail("cannot open: \(error)") }
        guard let fd = opened else { return nil }
        defer { try? fd.close() }
        let size: UInt64
        do { size = try fd.fileSize() } catch { throw fail("cannot stat: \(error)") }
        guard size >= UInt64(Self.headerSize + 4) else { throw fail("\(size) bytes: shorter than a header and checksum (truncated)") }
        let header = try Self.read(fd, count: Self.headerSize, at: 0, path: path)
        guard Array(header[0 ..< 8]) == Self.tag else { throw fail("tag is not TFBFROWS (not a row-count file)") }
        guard Self.u16(header, 8) == Self.version else {
            throw fail("version \(Self.u16(header, 8)) is not supported (this build reads \(Self.version))")
        }
        let count = Self.u64(header, 32)
        let tableStart = UInt64(Self.headerSize) + count * UInt64(Self.entrySize)
        guard count <= Self.maxEntries, size >= tableStart + 4 else {
            throw fail("\(size) bytes do not hold the \(count) entries the header declares (truncated or corrupt)")
        }
        let bytes = header + (try Self.read(fd, count: Int(tableStart) + 4 - Self.headerSize, at: UInt64(Self.headerSize), path: path))
        let stored = Self.u32(bytes, Int(tableStart))
        let computed = bytes.withUnsafeBytes { crc32(UnsafeRawBufferPointer(rebasing: $0[0 ..< Int(tableStart)])) }
        guard stored == computed else {
            throw fail(String(format32: "checksum mismatch (stored", stored, ", computed", computed))
        }
        guard Self.u64(bytes, 16) == UInt64(rowTokens), Self.u64(bytes, 24) == UInt64(lookahead) else {
            throw fail("counts for rows of \(Self.u64(bytes, 16)) tokens and look-ahead \(Self.u64(bytes, 24)), wanted \(rowTokens) and \(lookahead)")
        }
        guard Self.u32(bytes, 12) == UInt32(groupsPerCheckpoint) else {
            throw fail("checkpoints every \(Self.u32(bytes, 12)) groups, wanted every \(groupsPerCheckpoint)")
        }
        var entries: [BestFitShardKey: Entry] = [:]
        entries.reserveCapacity(Int(count))
        var next = tableStart + 4
        for e in 0 ..< Int(count) {
            let at = Self.headerSize + e * Self.entrySize
            let key = Self.key(bytes, at)
            let checkpoints = UInt64(Self.u32(bytes, at + 28))
            let offset = Self.u64(bytes, at + 40)
            if checkpoints > 0 {
                guard offset == next, checkpoints <= Self.maxCheckpoints else {
                    throw fail("entry \(e): checkpoint record at \(offset), expected at \(next) (corrupt)")
                }
                next += Self.recordSize(checkpoints: Int(checkpoints))
            }
            entries[key] = Entry(rows: Self.u64(bytes, at + 32), checkpointCount: Int(checkpoints), checkpointOffset: checkpoints > 0 ? offset : 0)
        }
        guard next == size else {
            throw fail("\(size) bytes, but the entries' checkpoint records end at \(next) (\(next > size ? "truncated" : "trailing bytes"))")
        }
        return entries
    }

    /// Reads the `count` checkpoints of the shard keyed `key` from the record at `offset` of the file
    /// at `path`, checking the record's key and CRC.
    /// - Throws: `EngineError` naming the file and the record when it cannot be read, is for another
    ///   shard, or its checksum does not match (the file was replaced or damaged).
    func readCheckpoints(path: String, key: BestFitShardKey, offset: UInt64, count: Int) throws(EngineError) -> [UInt64] {
        let fd: FileDescriptor
        do {
            fd = try Errno.rethrowing { try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec]) }
        } catch {
            throw EngineError("\(path): cannot open: \(error)")
        }
        defer { try? fd.close() }
        let size = Int(Self.recordSize(checkpoints: count))
        let bytes = try Self.read(fd, count: size, at: offset, path: path)
        guard Self.key(bytes, 0) == key else {
            throw EngineError("\(path): the checkpoint record at \(offset) is for another shard (the file was replaced or is corrupt)")
        }
        let stored = Self.u32(bytes, size - 4)
        let computed = bytes.withUnsafeBytes { crc32(UnsafeRawBufferPointer(rebasing: $0[0 ..< (size - 4)])) }
        guard stored == computed else {
            throw EngineError("\(path): checkpoint record at \(offset): " + String(format32: "checksum mismatch (stored", stored, ", computed", computed))
        }
        return (0 ..< count).map { Self.u64(bytes, Self.keySize + 8 * $0) }
    }

    /// Writes `entries` (every shard's key, rows and checkpoints) to the file at `path`: to a
    /// temporary file in the same directory, synced, then renamed into place. Creates the directory
    /// (and its parents) when missing. Returns the offset of each entry's checkpoint record (0 for none).
    /// - Throws: `EngineError` naming the file when the directory cannot be made or the file written.
    @discardableResult
    func save(_ entries: [(key: BestFitShardKey, rows: UInt64, checkpoints: [UInt64])], path: String) throws(EngineError) -> [UInt64] {
        var bytes: [UInt8] = []
        let records = entries.reduce(UInt64(0)) { $0 + ($1.checkpoints.isEmpty ? 0 : Self.recordSize(checkpoints: $1.checkpoints.count)) }
        bytes.reserveCapacity(Self.headerSize + entries.count * Self.entrySize + 4 + Int(records))
        func put<T: FixedWidthInteger>(_ value: T) { bytes.appendLE(value) }
        func putKey(_ key: BestFitShardKey) {
            put(key.tokenCount)
            put(key.documentCount)
            put(key.metadataChecksum)
            put(key.frameTableChecksum)
            put(key.documentSampleChecksum)
        }
        bytes.append(contentsOf: Self.tag)
        put(Self.version)
        put(UInt16(0))
        put(UInt32(groupsPerCheckpoint))
        put(UInt64(rowTokens))
        put(UInt64(lookahead))
        put(UInt64(entries.count))
        var offsets: [UInt64] = []
        var next = UInt64(Self.headerSize + entries.count * Self.entrySize + 4)
        for (key, rows, checkpoints) in entries {
            putKey(key)
            put(UInt32(checkpoints.count))
            put(rows)
            put(checkpoints.isEmpty ? 0 : next)
            offsets.append(checkpoints.isEmpty ? 0 : next)
            if !checkpoints.isEmpty { next += Self.recordSize(checkpoints: checkpoints.count) }
        }
        put(crc32(bytes))
        for (key, _, checkpoints) in entries where !checkpoints.isEmpty {
            let start = bytes.count
            putKey(key)
            for value in checkpoints { put(value) }
            put(bytes.withUnsafeBytes { crc32(UnsafeRawBufferPointer(rebasing: $0[start...])) })
        }

        try Self.createCacheDirectory(directory)
        do { try AtomicFile.write(bytes, to: path) } catch { throw EngineError(error.description) }
        return offsets
    }

    /// Bytes of a checkpoint record of `checkpoints` checkpoints.
    static func recordSize(checkpoints: Int) -> UInt64 {
        UInt64(keySize) + 8 * UInt64(checkpoints) + 4
    }

    /// `count` bytes of `fd` from `offset`.
    private static func read(_ fd: FileDescriptor, count: Int, at offset: UInt64, path: String) throws(EngineError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let done: Int
        do {
            let read: Result<Int, Errno> = bytes.withUnsafeMutableBytes { buffer in
                Result { () throws(Errno) in try fd.readFully(at: offset, into: buffer) }
            }
            done = try read.get()
        } catch {
            throw EngineError("\(path): read failed at byte \(offset): \(error)")
        }
        guard done == count else {
            throw EngineError("\(path): read failed at byte \(offset + UInt64(done)): end of file (truncated)")
        }
        return bytes
    }

    private static func key(_ bytes: [UInt8], _ at: Int) -> BestFitShardKey {
        BestFitShardKey(tokenCount: u64(bytes, at), documentCount: u64(bytes, at + 8), metadataChecksum: u32(bytes, at + 16),
                        frameTableChecksum: u32(bytes, at + 20), documentSampleChecksum: u32(bytes, at + 24))
    }
    // Bounds: `load` and `readCheckpoints` read whole sections, checked against the file's size, first.
    private static func u16(_ bytes: [UInt8], _ at: Int) -> UInt16 { bytes.withUnsafeBytes { $0.loadLE(at, as: UInt16.self) } }
    private static func u32(_ bytes: [UInt8], _ at: Int) -> UInt32 { bytes.withUnsafeBytes { $0.loadLE(at, as: UInt32.self) } }
    private static func u64(_ bytes: [UInt8], _ at: Int) -> UInt64 { bytes.withUnsafeBytes { $0.loadLE(at, as: UInt64.self) } }

    /// Creates the cache directory `path` and its missing parents (`mkdir -p`).
    /// - Throws: `EngineError` naming the directory and the prefix that could not be made.
    static func createCacheDirectory(_ path: String) throws(EngineError) {
        do { try createDirectories(path) } catch { throw EngineError("\(path): cannot create the cache directory (\(error))") }
    }
}
