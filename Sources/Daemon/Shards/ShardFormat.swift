/// The tokenfeed shard format, version 3 (byte-exact description in docs/SHARDS.md). Versions 1
/// and 2 (document lengths and frame table inside the metadata) are refused with a hint to run
/// `tokenfeed shard upgrade`, which rewrites them as version 3 without recompressing.
///
/// A shard is a valid zstd stream made of frames, all little-endian:
///
///     [header]   skippable frame  (magic 0x184D2A50, 16-byte payload, tag "TFSHARD\0")
///     [data 0]   zstd frame: tokens [0, T)            — content size and XXH64 content checksum set
///     [data 1]   zstd frame: tokens [T, 2T)
///     ...
///     [data n-1] zstd frame: the last, possibly shorter, run of tokens
///     [index]    skippable frame  (magic 0x184D2A50, tag "TFINDEX\0"): frame table and document ends, in CRC-checked pages
///     [metadata] skippable frame  (magic 0x184D2A50, tag "TFMETA\0\0"): counts, where the index is, tagged fields, CRC-32
///     [footer]   skippable frame  (magic 0x184D2A50, 24-byte payload, tag "TFFOOT\0\0"): where the metadata is
///
/// `zstd -dc` skips the skippable frames and prints exactly the token stream, the same bytes as a
/// datatrove `.ds` file. A reader opens a shard with three small reads (header, footer, metadata) and
/// no decompression; index pages (4 KiB or less, each with its own CRC-32) are read when needed; any
/// token range is read by decompressing only the frames that hold it.
public enum ShardFormat {
    /// The format version this build writes: 2 added the metadata's tagged-field section
    /// (tokenizer); 3 moves the frame table and document ends into a paged index frame.
    public static let version: UInt16 = 3
    /// The format versions this build serves.
    public static let readableVersions: ClosedRange<UInt16> = 3 ... 3
    /// Older versions `tokenfeed shard upgrade` rewrites as ``version``.
    public static let upgradableVersions: ClosedRange<UInt16> = 1 ... 2
    /// Tags of the metadata's tagged-field section (format version 2). Readers skip tags they do not know.
    public enum FieldTag: UInt16, Sendable {
        /// The tokenizer's name (UTF-8, e.g. `meta-llama/Llama-3.2-1B`), as datatrove's `.ds.metadata` gives it.
        case tokenizer = 1
    }
    /// Longest tokenizer name a shard may hold, in UTF-8 bytes.
    public static let maxTokenizerBytes = 1024
    /// Magic number of the zstd skippable frames tokenfeed writes (any of 0x184D2A50...0x184D2A5F is skippable).
    public static let skippableMagic: UInt32 = 0x184D_2A50
    /// Magic number of a regular zstd frame.
    public static let zstdMagic: UInt32 = 0xFD2F_B528
    /// Bytes of a skippable frame's own header: magic and payload size, both u32.
    public static let skippableHeaderSize = 8

    /// Payload tags (8 bytes, first in every skippable payload).
    public static let headerTag: [UInt8] = Array("TFSHARD\0".utf8)
    public static let metadataTag: [UInt8] = Array("TFMETA\0\0".utf8)
    public static let footerTag: [UInt8] = Array("TFFOOT\0\0".utf8)
    public static let indexTag: [UInt8] = Array("TFINDEX\0".utf8)

    /// Payload sizes of the fixed-size frames.
    public static let headerPayloadSize = 16
    public static let footerPayloadSize = 24
    /// Whole frame sizes (skippable header included).
    public static let headerFrameSize = skippableHeaderSize + headerPayloadSize   // 24
    public static let footerFrameSize = skippableHeaderSize + footerPayloadSize   // 32

    /// Bytes of one entry of the frame table: offset u64, compressed size u32, CRC-32 u32.
    public static let frameEntrySize = 16
    /// Bytes of the version 3 metadata payload before the tagged-field section's size.
    public static let metadataFixedSize = 64
    /// Bytes of the version 1/2 metadata payload before the frame table.
    static let legacyMetadataFixedSize = 40

    /// Frame-table entries in one index page (a page is its entries then a CRC-32: 4,084 bytes).
    public static let frameEntriesPerPage = 255
    /// Document ends in one index page (a page is the end before its first document, its ends, then a
    /// CRC-32: 4,092 bytes).
    public static let documentEndsPerPage = 510
    /// Bytes of the index frame before its first page: skippable header and tag.
    public static let indexPrefixSize = skippableHeaderSize + 8

    /// Default tokens per data frame: 1 Mi tokens (4 MiB of uint32 before compression).
    public static let defaultTokensPerFrame = 1 << 20
    /// Upper bound on tokens per frame accepted from a file (256 Mi tokens): keeps a hostile header
    /// from asking for an absurd buffer.
    public static let maxTokensPerFrame = 1 << 28
    /// The file name suffix of a shard.
    public static let fileExtension = "zst"
}

/// Width of one token id on disk.
public enum TokenWidth: UInt8, Sendable, Hashable, CustomStringConvertible {
    case uint16 = 2
    case uint32 = 4

    /// Bytes per token.
    public var bytes: Int { Int(rawValue) }

    public var description: String { self == .uint16 ? "uint16" : "uint32" }

    /// The narrowest width that holds every id of a vocabulary of `vocabularySize` ids.
    public init(forVocabularySize vocabularySize: Int) {
        self = vocabularySize <= 1 << 16 ? .uint16 : .uint32
    }
}
