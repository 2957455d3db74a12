import Foundation
import TestSupport
@testable import TokenfeedShards
import TokenfeedSystem

/// A shard's bytes split at its metadata frame (`data` holds the header, data frames and index frame), to rewrite the metadata payload with a valid CRC —
/// so that the decoder behind the CRC is what a test exercises.
struct ShardImage {
    /// Header and data frames: everything before the metadata frame.
    let data: [UInt8]
    /// The metadata payload (tag … CRC-32).
    let payload: [UInt8]

    init(bytes: [UInt8]) {
        let footer = bytes.count - ShardFormat.footerFrameSize
        func u64(_ at: Int) -> Int { Int(bytes[at ..< at + 8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }) }
        let metaOffset = u64(footer + 16)
        data = Array(bytes[..<metaOffset])
        payload = Array(bytes[(metaOffset + ShardFormat.skippableHeaderSize) ..< footer])
    }

    init(data: [UInt8], payload: [UInt8]) {
        self.data = data
        self.payload = payload
    }

    init(path: String) throws { self.init(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))) }

    /// Where the metadata frame starts (and the data frames must end).
    var dataEnd: UInt64 { UInt64(data.count) }

    /// `payload` with its last four bytes replaced by the CRC-32 of the rest.
    static func recomputingCRC(_ payload: [UInt8]) -> [UInt8] {
        guard payload.count >= 4 else { return payload }
        var p = payload
        let crc = crc32(Array(p[..<(p.count - 4)]))
        withUnsafeBytes(of: crc.littleEndian) { p.replaceSubrange((p.count - 4)..., with: $0) }
        return p
    }

    /// The whole file with `payload` as metadata (skippable frame size and footer adjusted), CRC as given.
    func file(payload: [UInt8]) -> [UInt8] {
        var w = LittleEndianWriter()
        w.append(bytes: data)
        w.append(ShardFormat.skippableMagic)
        w.append(UInt32(truncatingIfNeeded: payload.count))
        w.append(bytes: payload)
        w.append(ShardFormat.skippableMagic)
        w.append(UInt32(ShardFormat.footerPayloadSize))
        w.append(bytes: ShardFormat.footerTag)
        w.append(UInt64(data.count))
        w.append(UInt64(ShardFormat.skippableHeaderSize + payload.count))
        return w.bytes
    }

    /// Decodes `payload` as the reader does.
    func decode(_ payload: [UInt8], path: String = "mem.zst") throws(ShardError) -> ShardMetadata {
        try withBytes(of: payload) { (b) throws(ShardError) in try ShardMetadata.decode(payload: b, path: path, metadataOffset: dataEnd) }
    }
}

/// Offsets of the metadata payload's fixed fields (docs/SHARDS.md).
enum MetadataField: Int, CaseIterable {
    case version = 8, tokenWidth = 10, flags = 11, tokensPerFrame = 12, vocabularySize = 16, frameCount = 20
    case tokenCount = 24, documentCount = 32, largestFrame = 40, frameTableChecksum = 44, indexOffset = 48
    case documentEndsChecksum = 56

    var size: Int {
        switch self {
        case .version: 2
        case .tokenWidth, .flags: 1
        case .tokensPerFrame, .vocabularySize, .frameCount, .largestFrame, .frameTableChecksum, .documentEndsChecksum: 4
        case .tokenCount, .documentCount, .indexOffset: 8
        }
    }
}

extension Array where Element == UInt8 {
    /// Writes `value` little-endian into `size` bytes at `offset` (truncating).
    mutating func put(_ value: UInt64, at offset: Int, size: Int) {
        for i in 0 ..< size { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }

    func get(at offset: Int, size: Int) -> UInt64 {
        (0 ..< size).reduce(UInt64(0)) { $0 | UInt64(self[offset + $1]) << (8 * UInt64($1)) }
    }
}
