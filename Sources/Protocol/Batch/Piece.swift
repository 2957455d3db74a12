/// Provenance of one segment of a row: `length` consecutive tokens read from shard `shardIndex`
/// (an index into the Welcome's shard list of the row's dataset), starting inside document
/// `documentIndex` of that shard at token `tokenOffset` of the shard's token stream.
///
/// A bestfit row that ends in padding has a final padding piece (`shardIndex == Piece.paddingShard`,
/// document and offset 0) so that `cu_seqlens` always ends at `sequence_length + 1`.
/// Wire form, 24 bytes: `0 u32 shard_index  4 u32 length  8 u64 document_index  16 u64 token_offset`.
public struct Piece: Sendable, Hashable {
    /// Encoded size in bytes.
    public static let encodedSize = 24
    /// The shard index that marks a padding piece.
    public static let paddingShard: UInt32 = .max

    /// Shard index within the row's dataset, or `paddingShard`.
    public var shardIndex: UInt32
    /// Tokens in this piece (≥ 1); equals the difference of consecutive cu_seqlens entries.
    public var length: UInt32
    /// Document index within the shard (0 for padding).
    public var documentIndex: UInt64
    /// Token offset within the shard's token stream of the piece's first token (0 for padding).
    public var tokenOffset: UInt64

    /// Creates a data piece.
    public init(shardIndex: UInt32, documentIndex: UInt64, tokenOffset: UInt64, length: UInt32) {
        self.shardIndex = shardIndex
        self.length = length
        self.documentIndex = documentIndex
        self.tokenOffset = tokenOffset
    }

    /// A padding piece of `length` tokens (bestfit rows only; always the last piece of its row).
    public static func padding(length: UInt32) -> Piece {
        Piece(shardIndex: paddingShard, documentIndex: 0, tokenOffset: 0, length: length)
    }

    /// Whether this piece is padding rather than data.
    public var isPadding: Bool { shardIndex == Piece.paddingShard }
}
