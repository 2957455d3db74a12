import Synchronization
import TokenfeedMixing
import TokenfeedShards
import TokenfeedSystem

/// The stored counts of nanotron blends (``NanotronBlend``: every dataset's count before each
/// multiple of 2²⁰ samples), persisted in a cache directory as the bestfit row counts are
/// (``BestFitRowStore``), so that `--order nanotron` computes a stage's blend once per directory,
/// not once per process: about 5·10⁹ greedy steps, minutes of CPU, for SmolLM3's three stages.
///
/// One file per blend, `nanotron-blend-<key>.counts`, `<key>` 16 hex digits of a 64-bit FNV-1a of
/// everything the counts depend on: the algorithm version (``NanotronBlend/algorithmVersion``), the
/// interval and the normalised float64 weights, bit for bit. The counts are a prefix property (those
/// before sample `c·2²⁰` do not depend on how far a stage reaches), so the stage's range is not part
/// of the key: a file holds as many counts as were computed, and a blend that needs more computes
/// the rest from its last one and rewrites the file. Version 1, integers little-endian:
///
///     offset 0           8 bytes   tag "TFNTBLND"
///            8           u16       version (1)
///           10           u16       algorithm version
///           12           u32       dataset count n
///           16           u64       interval (samples between stored counts)
///           24           u64       stored counts c (rows, the first all zeros)
///           32           n × u64   the normalised weights, IEEE 754 bit patterns
///       32 + 8n          c × n × u64  the counts, row by row
///       32 + 8n + 8cn    u32       CRC-32 of every byte before it
///
/// A file is used only when its tag, version, algorithm, interval and weights are this blend's,
/// its size and CRC are right and its counts pass ``NanotronBlend/problem(withStoredCounts:)``
/// (first row zeros, non-decreasing, row `c` summing to `c` intervals); otherwise it is reported
/// and the counts are computed again, then the file is rewritten. Files are written with
/// ``AtomicFile`` (whole or not at all; several processes may share the directory).
public final class NanotronBlendStore: NanotronBlendCountCache {
    public let directory: String
    let report: @Sendable (String) -> Void
    private let countsRead = Atomic<Int>(0)
    private let filesWritten = Atomic<Int>(0)
    private let filesRejected = Atomic<Int>(0)

    static let tag: [UInt8] = Array("TFNTBLND".utf8)
    static let version: UInt16 = 1
    static let headerSize = 32
    /// Files larger than this are refused as corrupt (SmolLM3's largest is under 1 MiB).
    static let maxBytes = 1 << 30

    /// - Parameters:
    ///   - directory: where the files are; created (with its parents) when the first one is written.
    ///   - report: one line per file read, rejected (and why) or written, or failing to be written.
    public init(directory: String, report: @escaping @Sendable (String) -> Void = { _ in }) {
        self.directory = directory
        self.report = report
    }

    /// Stored counts taken from files so far (rows, over every blend).
    public var storedCountsRead: Int { countsRead.load(ordering: .relaxed) }
    /// Files written so far.
    public var written: Int { filesWritten.load(ordering: .relaxed) }
    /// Files found and refused so far (damaged, truncated, of another format).
    public var rejected: Int { filesRejected.load(ordering: .relaxed) }

    /// The file of the blend with `weights` (normalised) and `interval`.
    public func path(weights: [Double], interval: UInt64) -> String {
        var hasher = FNV1a64()
        hasher.add(Self.keyBytes(weights: weights, interval: interval))
        return directory + "/nanotron-blend-" + Hex.padded(hasher.value) + ".counts"
    }

    public func storedCounts(for blend: NanotronBlend) -> [[UInt64]]? {
        let path = path(weights: blend.weights, interval: blend.checkpointInterval)
        do {
            guard let counts = try load(path: path, blend: blend) else { return nil }
            countsRead.add(counts.count, ordering: .relaxed)
            report("nanotron blend cache \(path): read \(counts.count) stored counts (\(UInt64(counts.count - 1) * blend.checkpointInterval) samples)")
            return counts
        } catch {
            filesRejected.add(1, ordering: .relaxed)
            report("nanotron blend cache: ignored \(error.description); computing the blend's counts again")
            return nil
        }
    }

    public func store(_ blend: NanotronBlend) {
        let path = path(weights: blend.weights, interval: blend.checkpointInterval)
        do {
            try save(blend, path: path)
            filesWritten.add(1, ordering: .relaxed)
            report("nanotron blend cache \(path): wrote \(blend.storedCounts.count) stored counts")
        } catch {
            report("nanotron blend cache: not written: \(error.description)")
        }
    }

    /// The counts in the file at `path` for `blend`; nil when there is no such file.
    /// - Throws: `EngineError` naming the file and what is wrong with it.
    func load(path: String, blend: NanotronBlend) throws(EngineError) -> [[UInt64]]? {
        func fail(_ message: String) -> EngineError { EngineError("\(path): \(message)") }
        let contents: [UInt8]?
        do { contents = try AtomicFile.readIfPresent(path, atMost: Self.maxBytes) } catch { throw EngineError(error.description) }
        guard let bytes = contents else { return nil }
        let n = blend.weights.count
        let keySize = Self.headerSize + 8 * n
        guard bytes.count >= keySize + 4 else {
            throw fail("\(bytes.count) bytes: shorter than the header of a blend-count file of \(n) datasets (truncated)")
        }
        guard Array(bytes[0 ..< 8]) == Self.tag else { throw fail("tag is not TFNTBLND (not a blend-count file)") }
        guard Self.integer(bytes, 8, as: UInt16.self) == Self.version else {
            throw fail("version \(Self.integer(bytes, 8, as: UInt16.self)) is not supported (this build reads \(Self.version))")
        }
        let stored = Self.integer(bytes, bytes.count - 4, as: UInt32.self)
        let computed = bytes.withUnsafeBytes { crc32(UnsafeRawBufferPointer(rebasing: $0[0 ..< (bytes.count - 4)])) }
        guard stored == computed else {
            throw fail(String(format32: "checksum mismatch (stored", stored, ", computed", computed))
        }
        guard Array(bytes[8 ..< 24]) + Array(bytes[32 ..< keySize]) == Self.keyBytes(weights: blend.weights, interval: blend.checkpointInterval) else {
            throw fail("counts of another blend (algorithm, interval or weights differ)")
        }
        let rows = Self.integer(bytes, 24, as: UInt64.self)
        guard rows >= 1, rows <= UInt64(Self.maxBytes), UInt64(bytes.count) == UInt64(keySize + 4) + rows * UInt64(8 * n) else {
            throw fail("\(bytes.count) bytes do not hold the \(rows) stored counts of \(n) datasets the header declares")
        }
        var counts: [[UInt64]] = []
        counts.reserveCapacity(Int(rows))
        for c in 0 ..< Int(rows) {
            let at = keySize + 8 * n * c
            counts.append((0 ..< n).map { Self.integer(bytes, at + 8 * $0, as: UInt64.self) })
        }
        if let problem = blend.problem(withStoredCounts: counts) { throw fail(problem) }
        return counts
    }

    /// Writes `blend`'s stored counts to `path` (see the type's layout), creating the directory.
    /// - Throws: `EngineError` naming the file when the directory cannot be made or the file written.
    func save(_ blend: NanotronBlend, path: String) throws(EngineError) {
        let counts = blend.storedCounts
        var bytes = Self.tag
        bytes.reserveCapacity(Self.headerSize + 8 * blend.weights.count * (counts.count + 1) + 4)
        // The key bytes hold everything from offset 8 except the row count at 24.
        let key = Self.keyBytes(weights: blend.weights, interval: blend.checkpointInterval)
        bytes += key[0 ..< 16]
        bytes.appendLE(UInt64(counts.count))
        bytes += key[16...]
        for row in counts {
            for value in row { bytes.appendLE(value) }
        }
        bytes.appendLE(crc32(bytes))
        try BestFitRowStore.createCacheDirectory(directory)
        do { try AtomicFile.write(bytes, to: path) } catch { throw EngineError(error.description) }
    }

    /// Bytes 8 ..< 24 and 32 ..< 32 + 8n of a file (version, algorithm, n, interval, weights): what
    /// the counts depend on, hashed into the file name and compared on reading.
    static func keyBytes(weights: [Double], interval: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        func put<T: FixedWidthInteger>(_ value: T) { bytes.appendLE(value) }
        put(version)
        put(NanotronBlend.algorithmVersion)
        put(UInt32(weights.count))
        put(interval)
        for w in weights { put(w.bitPattern) }
        return bytes
    }

    /// The little-endian integer at byte `at` of `bytes`.
    private static func integer<T: FixedWidthInteger>(_ bytes: [UInt8], _ at: Int, as type: T.Type) -> T {
        bytes.withUnsafeBytes { $0.loadLE(at, as: T.self) }
    }
}
