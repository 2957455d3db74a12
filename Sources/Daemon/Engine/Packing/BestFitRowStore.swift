import TokenfeedMixing
import TokenfeedShards
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Per-shard bestfit row counts of datasets, persisted in a cache directory: one small file per
/// dataset folder, row length and look-ahead, so that counting (docs/PACKING.md, "the cost of a
/// jump") is done once per dataset, not once per process.
///
/// A file maps ``BestFitShardKey`` (a fingerprint of a shard's content) to the rows the shard packs
/// into. A count is only ever used for a shard whose key matches, so a file from another dataset,
/// another row length or look-ahead, or from before a shard was rewritten can make a planner count
/// again, never compute a wrong row. Version 1, all integers little-endian:
///
///     offset 0        8 bytes   tag "TFBFROWS"
///            8        u16       version (1)
///           10        u16       flags (0)
///           12        u32       reserved (0)
///           16        u64       row length R (sequence length + 1)
///           24        u64       look-ahead
///           32        u64       entry count n
///           40        n × 40    entries: u64 token count, u64 document count, u32 metadata CRC-32,
///                               u32 frame-table CRC-32, u32 document-sample CRC-32, u32 reserved (0),
///                               u64 rows
///      40 + 40n       u32       CRC-32 of bytes [0, 40 + 40n)
///
/// Files are written to a temporary name in the directory and renamed into place, so a reader sees
/// a whole file or none; several processes sharing the directory may each write it (the last rename
/// wins, and any of the files is right).
struct BestFitRowStore: Sendable {
    let directory: String
    let rowTokens: Int
    let lookahead: Int

    static let tag: [UInt8] = Array("TFBFROWS".utf8)
    static let version: UInt16 = 1
    static let headerSize = 40
    static let entrySize = 40
    /// Files larger than this many entries are refused as corrupt (a dataset of 16 Mi shards).
    static let maxEntries: UInt64 = 1 << 24

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
        let hash = String(StableHash.fnv1a64(canonical), radix: 16)
        let hex = String(repeating: "0", count: 16 - hash.count) + hash
        return directory + "/bestfit-rows-\(name)-\(hex)-r\(rowTokens)-la\(lookahead).bin"
    }

    /// Reads the counts in the file at `path`; nil when there is no such file.
    /// - Throws: `EngineError` naming the file and what is wrong with it: unreadable, truncated or
    ///   too long, a wrong tag, an unsupported version, a checksum mismatch, or another row length or
    ///   look-ahead than this store's.
    func load(path: String) throws(EngineError) -> [BestFitShardKey: UInt64]? {
        func fail(_ message: String) -> EngineError { EngineError("\(path): \(message)") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw fail("cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw fail("cannot stat: \(String(cString: strerror(errno)))") }
        let size = Int(status.st_size)
        guard size >= Self.headerSize + 4 else { throw fail("\(size) bytes: shorter than a header and checksum (truncated)") }
        guard UInt64(size) <= UInt64(Self.headerSize + 4) + Self.maxEntries * UInt64(Self.entrySize) else {
            throw fail("\(size) bytes: larger than any row-count file")
        }
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, size - done, off_t(done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw fail("read failed at byte \(done): \(n < 0 ? String(cString: strerror(errno)) : "end of file")") }
            done += n
        }
        func u16(_ at: Int) -> UInt16 { bytes.withUnsafeBytes { UInt16(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt16.self)) } }
        func u32(_ at: Int) -> UInt32 { bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt32.self)) } }
        func u64(_ at: Int) -> UInt64 { bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt64.self)) } }
        guard Array(bytes[0 ..< 8]) == Self.tag else { throw fail("tag is not TFBFROWS (not a row-count file)") }
        guard u16(8) == Self.version else { throw fail("version \(u16(8)) is not supported (this build reads \(Self.version))") }
        let count = u64(32)
        guard count <= Self.maxEntries, size == Self.headerSize + Int(count) * Self.entrySize + 4 else {
            throw fail("\(size) bytes do not hold the \(count) entries the header declares (truncated or corrupt)")
        }
        let stored = u32(size - 4)
        let computed = bytes.withUnsafeBytes { crc32(UnsafeRawBufferPointer(rebasing: $0[0 ..< (size - 4)])) }
        guard stored == computed else {
            throw fail("checksum mismatch (stored \(Self.hex(stored)), computed \(Self.hex(computed)))")
        }
        guard u64(16) == UInt64(rowTokens), u64(24) == UInt64(lookahead) else {
            throw fail("counts for rows of \(u64(16)) tokens and look-ahead \(u64(24)), wanted \(rowTokens) and \(lookahead)")
        }
        var counts: [BestFitShardKey: UInt64] = [:]
        counts.reserveCapacity(Int(count))
        for e in 0 ..< Int(count) {
            let at = Self.headerSize + e * Self.entrySize
            let key = BestFitShardKey(tokenCount: u64(at), documentCount: u64(at + 8), metadataChecksum: u32(at + 16),
                                      frameTableChecksum: u32(at + 20), documentSampleChecksum: u32(at + 24))
            counts[key] = u64(at + 32)
        }
        return counts
    }

    /// Writes `entries` to the file at `path`: to a temporary file in the same directory, synced,
    /// then renamed into place. Creates the directory (and its parents) when missing.
    /// - Throws: `EngineError` naming the file when the directory cannot be made or the file written.
    func save(_ entries: [(key: BestFitShardKey, rows: UInt64)], path: String) throws(EngineError) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.headerSize + entries.count * Self.entrySize + 4)
        func put<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }
        bytes.append(contentsOf: Self.tag)
        put(Self.version)
        put(UInt16(0))
        put(UInt32(0))
        put(UInt64(rowTokens))
        put(UInt64(lookahead))
        put(UInt64(entries.count))
        for (key, rows) in entries {
            put(key.tokenCount)
            put(key.documentCount)
            put(key.metadataChecksum)
            put(key.frameTableChecksum)
            put(key.documentSampleChecksum)
            put(UInt32(0))
            put(rows)
        }
        put(crc32(bytes))

        try Self.makeDirectories(directory)
        do { try AtomicFile.write(bytes, to: path) } catch { throw EngineError(error.description) }
    }

    /// `0x` and 8 hex digits.
    static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }

    /// `mkdir -p`.
    private static func makeDirectories(_ path: String) throws(EngineError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component + "/"
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw EngineError("\(path): cannot create the cache directory (\(prefix)): \(String(cString: strerror(errno)))")
            }
        }
    }
}
