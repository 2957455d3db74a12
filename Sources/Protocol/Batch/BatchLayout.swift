/// Byte offsets of a Batch frame's sections, all measured from the start of the frame
/// (docs/PROTOCOL.md, "Batch"):
///
/// ```
/// 0    frame header (24)
/// 24   fixed fields (40) and the cursor after this batch (56)
/// 120  rows:        batch_size × 32 bytes
///      pieces:      piece_count × 24 bytes
///      cu_seqlens:  (piece_count + batch_size) × u32
///      zero padding up to token_offset = the next multiple of 64
///      tokens:      batch_size × (sequence_length + 1) × token_width bytes, rows contiguous
/// ```
/// The layout is canonical: `token_offset` is always the smallest multiple of 64 at or after the metadata.
public struct BatchLayout: Sendable, Hashable {
    /// Offset of the rows table (the size of header, fixed fields and cursor).
    public static let rowsOffset = 120
    /// Bytes per row record.
    public static let rowRecordSize = 32
    /// Alignment of the token block relative to the frame start.
    public static let tokenAlignment = 64
    /// Largest rows per batch.
    public static let maxBatchSize = 1 << 20

    /// Rows.
    public let batchSize: Int
    /// Tokens a sequence counts for; a row holds `sequenceLength + 1`.
    public let sequenceLength: Int
    /// Bytes per token.
    public let tokenWidth: TokenWidth
    /// Pieces over all rows (≥ batchSize: every row has at least one).
    public let pieceCount: Int

    /// Computes the layout.
    /// - Precondition: 1 ≤ batchSize ≤ 2^20, 1 ≤ sequenceLength < 2^24, batchSize ≤ pieceCount ≤ batchSize × (sequenceLength + 1).
    public init(batchSize: Int, sequenceLength: Int, tokenWidth: TokenWidth, pieceCount: Int) {
        precondition(batchSize >= 1 && batchSize <= BatchLayout.maxBatchSize, "batch size \(batchSize) out of range")
        precondition(sequenceLength >= 1 && sequenceLength <= Int(Welcome.maxSequenceLength), "sequence length \(sequenceLength) out of range")
        precondition(pieceCount >= batchSize && pieceCount <= batchSize * (sequenceLength + 1), "piece count \(pieceCount) out of range")
        self.batchSize = batchSize
        self.sequenceLength = sequenceLength
        self.tokenWidth = tokenWidth
        self.pieceCount = pieceCount
    }

    /// Offset of the pieces table.
    public var piecesOffset: Int { BatchLayout.rowsOffset + batchSize * BatchLayout.rowRecordSize }
    /// Offset of the cu_seqlens table.
    public var cuSeqlensOffset: Int { piecesOffset + pieceCount * Piece.encodedSize }
    /// End of the metadata (start of the zero padding).
    public var metadataEnd: Int { cuSeqlensOffset + (pieceCount + batchSize) * 4 }
    /// Offset of the token block: a multiple of 64. Also the number of bytes a sender writes
    /// before the token block (header + metadata + padding).
    public var tokenOffset: Int { BatchLayout.tokenOffset(metadataEnd: metadataEnd) }
    /// Tokens per row.
    public var rowTokens: Int { sequenceLength + 1 }
    /// Size of the token block in bytes.
    public var tokenBytes: Int { batchSize * rowTokens * tokenWidth.bytes }
    /// Size of the whole frame.
    public var frameLength: Int { tokenOffset + tokenBytes }
    /// The frame header's payload_length.
    public var payloadLength: Int { frameLength - FrameHeader.size }

    /// The largest `tokenOffset` any batch of this shape can have (every token its own piece):
    /// a buffer this large always holds header and metadata.
    public static func maximumTokenOffset(batchSize: Int, sequenceLength: Int) -> Int {
        BatchLayout(batchSize: batchSize, sequenceLength: sequenceLength, tokenWidth: .u32,
                    pieceCount: batchSize * (sequenceLength + 1)).tokenOffset
    }

    static func tokenOffset(metadataEnd: Int) -> Int {
        (metadataEnd + tokenAlignment - 1) / tokenAlignment * tokenAlignment
    }
}
