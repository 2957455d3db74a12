import TokenfeedSystem

/// The resume cursor: where a job's stream continues (docs/PROTOCOL.md, "Cursor").
///
/// 56 bytes, little-endian, self-checking (CRC-32 over the first 52 bytes), bound to the
/// curriculum fingerprint. It names a global position, not a rank: every rank of a job holds the
/// same cursor after the same step, and any rank can resume from it. Epochs and wrap-around are
/// a function of the position (the stream is a pure function of curriculum, manifest, seed and
/// position), so they are not stored; the set of quarantined shards is summarised by
/// `quarantineDigest` so a daemon whose quarantine state differs refuses the cursor.
///
/// ```
/// 0 [4] magic "TKCR"  4 u16 version (1)  6 u16 reserved  8 u64 fingerprint  16 u64 next_step
/// 24 u64 next_sequence  32 u32 world_size  36 u32 batch_size  40 u64 quarantine_digest
/// 48 u32 reserved  52 u32 crc32(bytes 0..<52)
/// ```
public struct Cursor: Sendable, Hashable, CustomStringConvertible {
    /// Encoded size in bytes.
    public static let size = 56
    /// The magic read as a little-endian u32 (`TKCR`).
    public static let magicValue: UInt32 = 0x5243_4B54
    /// The cursor format version this module writes and reads.
    public static let currentVersion: UInt16 = 1
    /// Prefix of the textual form.
    public static let textPrefix = "tfc1-"

    /// Fingerprint of the curriculum, shard manifest and seed the stream was planned from.
    public var fingerprint: UInt64
    /// The step that comes next, counted with the `worldSize × batchSize` it was produced with.
    public var nextStep: UInt64
    /// Global sequence index of the first sequence of `nextStep` (`nextStep × worldSize × batchSize`).
    /// This is what a resume with another world size continues from.
    public var nextSequence: UInt64
    /// World size of the job that produced the cursor.
    public var worldSize: UInt32
    /// Per-rank batch size of the job that produced the cursor.
    public var batchSize: UInt32
    /// 0 when no shard was quarantined before `nextSequence`; otherwise a digest the daemon
    /// computes of the quarantined shards (see docs/PROTOCOL.md).
    public var quarantineDigest: UInt64

    /// Creates a cursor; `nextSequence` is computed from the step and shape.
    /// - Precondition: world and batch size ≥ 1 and `nextStep × worldSize × batchSize` fits in 64 bits.
    public init(fingerprint: UInt64, nextStep: UInt64, worldSize: UInt32, batchSize: UInt32,
                quarantineDigest: UInt64 = 0) {
        precondition(worldSize >= 1 && batchSize >= 1, "world and batch size must be at least 1")
        let (global, o1) = UInt64(worldSize).multipliedReportingOverflow(by: UInt64(batchSize))
        let (sequence, o2) = nextStep.multipliedReportingOverflow(by: global)
        precondition(!o1 && !o2, "cursor position overflows 64 bits")
        self.fingerprint = fingerprint
        self.nextStep = nextStep
        self.nextSequence = sequence
        self.worldSize = worldSize
        self.batchSize = batchSize
        self.quarantineDigest = quarantineDigest
    }

    /// The cursor at the start of the stream.
    public static func start(fingerprint: UInt64, worldSize: UInt32, batchSize: UInt32) -> Cursor {
        Cursor(fingerprint: fingerprint, nextStep: 0, worldSize: worldSize, batchSize: batchSize)
    }

    /// The step at which a job of shape `worldSize × batchSize` continues from this cursor, or nil
    /// when `nextSequence` is not on a step boundary of that shape.
    public func resumeStep(worldSize: UInt32, batchSize: UInt32) -> UInt64? {
        let global = UInt64(worldSize) * UInt64(batchSize)
        guard global > 0, nextSequence % global == 0 else { return nil }
        return nextSequence / global
    }

    /// Writes the 56 bytes at `destination` (no alignment needed).
    public func write(to destination: UnsafeMutableRawPointer) {
        destination.storeLE(Cursor.magicValue, at: 0)
        destination.storeLE(Cursor.currentVersion, at: 4)
        destination.storeLE(UInt16(0), at: 6)
        destination.storeLE(fingerprint, at: 8)
        destination.storeLE(nextStep, at: 16)
        destination.storeLE(nextSequence, at: 24)
        destination.storeLE(worldSize, at: 32)
        destination.storeLE(batchSize, at: 36)
        destination.storeLE(quarantineDigest, at: 40)
        destination.storeLE(UInt32(0), at: 48)
        let crc = crc32(UnsafeRawBufferPointer(start: destination, count: 52))
        destination.storeLE(crc, at: 52)
    }

    /// The 56 encoded bytes.
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: Cursor.size)
        out.withUnsafeMutableBytes { write(to: $0.baseAddress!) }
        return out
    }

    /// Decodes and verifies 56 cursor bytes.
    /// - Parameter frameOffset: where the bytes sit in a frame, for error messages (nil outside a frame).
    /// - Throws: `bad_cursor` naming the failed check (length, magic, version, reserved, CRC, shape, position).
    public init(bytes: UnsafeRawBufferPointer, frameOffset: Int? = nil) throws(ProtocolError) {
        func bad(_ what: String) -> ProtocolError {
            let place = frameOffset.map { "cursor at offset \($0)" } ?? "cursor"
            return ProtocolError(.badCursor, "\(place): \(what)")
        }
        guard bytes.count == Cursor.size else { throw bad("must be \(Cursor.size) bytes, got \(bytes.count)") }
        guard bytes.loadLE(0, as: UInt32.self) == Cursor.magicValue else { throw bad("magic is not \"TKCR\"") }
        let version = bytes.loadLE(4, as: UInt16.self)
        guard version == Cursor.currentVersion else { throw bad("cursor version \(version), expected \(Cursor.currentVersion)") }
        let stored = bytes.loadLE(52, as: UInt32.self)
        let computed = crc32(UnsafeRawBufferPointer(rebasing: bytes[0..<52]))
        guard stored == computed else {
            throw bad("checksum mismatch (stored 0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16)))")
        }
        guard bytes.loadLE(6, as: UInt16.self) == 0, bytes.loadLE(48, as: UInt32.self) == 0 else {
            throw bad("reserved fields must be 0")
        }
        let world = bytes.loadLE(32, as: UInt32.self)
        let batch = bytes.loadLE(36, as: UInt32.self)
        guard world >= 1, batch >= 1 else { throw bad("world_size \(world) and batch_size \(batch) must be at least 1") }
        let step = bytes.loadLE(16, as: UInt64.self)
        let sequence = bytes.loadLE(24, as: UInt64.self)
        let (expected, overflow) = step.multipliedReportingOverflow(by: UInt64(world) * UInt64(batch))
        guard !overflow, expected == sequence else {
            throw bad("next_sequence \(sequence) is not next_step \(step) × world_size \(world) × batch_size \(batch)")
        }
        self.fingerprint = bytes.loadLE(8, as: UInt64.self)
        self.nextStep = step
        self.nextSequence = sequence
        self.worldSize = world
        self.batchSize = batch
        self.quarantineDigest = bytes.loadLE(40, as: UInt64.self)
    }

    /// Decodes and verifies cursor bytes held in an array. See `init(bytes:frameOffset:)`.
    public init(bytes: [UInt8]) throws(ProtocolError) {
        self = try withBytes(of: bytes) { buffer throws(ProtocolError) in try Cursor(bytes: buffer) }
    }

    /// The textual form `tfc1-` followed by the 56 bytes as 112 lowercase hex digits, used in
    /// cursor files (`tokenfeed dump --cursor-out/--cursor-in`).
    public var text: String {
        Cursor.textPrefix + bytes.map { Hex.padded($0) }.joined()
    }

    /// Parses the textual form. Leading and trailing whitespace (a file's final newline) is ignored;
    /// hex digits may be upper or lower case.
    /// - Throws: `bad_cursor` naming the column of the first bad character, or any check of `init(bytes:)`.
    public init(text: String) throws(ProtocolError) {
        var chars = Array(text.utf8)
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }
        while let last = chars.last, isSpace(last) { chars.removeLast() }
        var start = 0
        while start < chars.count, isSpace(chars[start]) { start += 1 }
        let prefix = Array(Cursor.textPrefix.utf8)
        guard chars.count - start >= prefix.count, Array(chars[start..<(start + prefix.count)]) == prefix else {
            throw ProtocolError(.badCursor, "cursor text: must start with \"\(Cursor.textPrefix)\"")
        }
        let hex = chars[(start + prefix.count)...]
        guard hex.count == 2 * Cursor.size else {
            throw ProtocolError(.badCursor, "cursor text: expected \(2 * Cursor.size) hex digits after \"\(Cursor.textPrefix)\", got \(hex.count)")
        }
        func nibble(_ c: UInt8, column: Int) throws(ProtocolError) -> UInt8 {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x61...0x66: return c - 0x61 + 10
            case 0x41...0x46: return c - 0x41 + 10
            default: throw ProtocolError(.badCursor, "cursor text: column \(column + 1) is not a hex digit")
            }
        }
        var raw = [UInt8](repeating: 0, count: Cursor.size)
        var i = hex.startIndex
        for k in 0..<Cursor.size {
            raw[k] = try nibble(hex[i], column: i) << 4 | nibble(hex[i + 1], column: i + 1)
            i += 2
        }
        try self.init(bytes: raw)
    }

    public var description: String {
        "cursor(step \(nextStep), sequence \(nextSequence), world \(worldSize) × batch \(batchSize), fingerprint 0x\(String(fingerprint, radix: 16)))"
    }
}
