import TokenfeedSystem

/// Writes a Batch frame's header and metadata straight into a caller-provided buffer, without
/// allocating, so a server can send `buffer[0 ..< tokenOffset]` followed by the token block from its
/// ring slot with one `writev` and never copy tokens.
///
/// ```swift
/// var w = BatchHeaderWriter(into: buf, step: s, rank: r, worldSize: W, batchSize: B,
///                           sequenceLength: L, tokenWidth: .u32, pieceCount: P, fingerprint: fp)
/// for row in rows { w.appendRow(datasetIndex: row.dataset, stageIndex: row.stage, pieces: row.pieces) }
/// let headerBytes = w.finish()   // == w.layout.tokenOffset
/// ```
/// Global sequence indices and the cursor after the batch are computed from the step and shape
/// (row `i` of rank `r` at step `s` is global sequence `s·W·B + r·B + i`).
public struct BatchHeaderWriter {
    /// The frame's layout.
    public let layout: BatchLayout
    /// The cursor written into the frame: the position after this batch.
    public let cursorAfter: Cursor
    private let base: UnsafeMutableRawPointer
    private let firstSequence: UInt64
    private var rowsWritten = 0
    private var piecesWritten = 0

    /// Writes the frame header, fixed fields and cursor; rows follow with `appendRow`.
    /// - Precondition: the buffer holds at least `layout.tokenOffset` bytes; `rank < worldSize`;
    ///   shape within the limits of `BatchLayout`; the frame fits the protocol's 1 GiB batch limit.
    public init(into buffer: UnsafeMutableRawBufferPointer, step: UInt64, rank: UInt32, worldSize: UInt32,
                batchSize: UInt32, sequenceLength: UInt32, tokenWidth: TokenWidth, pieceCount: Int,
                fingerprint: UInt64, quarantineDigest: UInt64 = 0, requestID: UInt32 = 0) {
        precondition(rank < worldSize, "rank \(rank) not below world size \(worldSize)")
        let layout = BatchLayout(batchSize: Int(batchSize), sequenceLength: Int(sequenceLength),
                                 tokenWidth: tokenWidth, pieceCount: pieceCount)
        precondition(buffer.count >= layout.tokenOffset, "buffer of \(buffer.count) bytes; the metadata needs \(layout.tokenOffset)")
        precondition(UInt64(layout.payloadLength) <= FrameLimits.protocolMaximum.batch, "batch frame exceeds the 1 GiB limit")
        self.layout = layout
        self.base = buffer.baseAddress!
        let global = UInt64(worldSize) * UInt64(batchSize)
        self.firstSequence = step * global + UInt64(rank) * UInt64(batchSize)
        self.cursorAfter = Cursor(fingerprint: fingerprint, nextStep: step + 1, worldSize: worldSize,
                                  batchSize: batchSize, quarantineDigest: quarantineDigest)
        FrameHeader(type: .batch, payloadLength: UInt64(layout.payloadLength), requestID: requestID).write(to: base)
        base.storeLE(step, at: 24)
        base.storeLE(rank, at: 32)
        base.storeLE(worldSize, at: 36)
        base.storeLE(batchSize, at: 40)
        base.storeLE(sequenceLength, at: 44)
        base.storeLE(tokenWidth.rawValue, at: 48)
        base.storeLE(UInt8(0), at: 49)
        base.storeLE(UInt16(0), at: 50)
        base.storeLE(UInt32(pieceCount), at: 52)
        base.storeLE(UInt32(layout.tokenOffset), at: 56)
        base.storeLE(UInt32(0), at: 60)
        cursorAfter.write(to: base + 64)
    }

    /// Writes the next row's record, pieces and cu_seqlens. `epoch` is the epoch of the row's dataset
    /// its first token is in (0 for the first pass).
    /// - Precondition: fewer than `batchSize` rows written; pieces non-empty, each of length ≥ 1,
    ///   summing to `sequenceLength + 1`; a padding piece only last; the declared piece count not exceeded.
    public mutating func appendRow<Pieces: Collection<Piece>>(datasetIndex: UInt32, stageIndex: UInt32,
                                                              epoch: UInt32 = 0, pieces: Pieces) {
        precondition(rowsWritten < layout.batchSize, "more rows than batch size \(layout.batchSize)")
        let n = pieces.count
        precondition(n >= 1 && piecesWritten + n <= layout.pieceCount, "row \(rowsWritten): piece count exceeds the declared total")
        let row = base + BatchLayout.rowsOffset + rowsWritten * BatchLayout.rowRecordSize
        let cu = base + layout.cuSeqlensOffset + (piecesWritten + rowsWritten) * 4
        var piece = base + layout.piecesOffset + piecesWritten * Piece.encodedSize
        var position: UInt32 = 0
        var padded: UInt32 = 0
        cu.storeLE(UInt32(0), at: 0)
        var k = 0
        for p in pieces {
            precondition(p.length >= 1, "row \(rowsWritten): empty piece")
            precondition(!p.isPadding || k == n - 1, "row \(rowsWritten): padding must be the last piece")
            if p.isPadding {
                precondition(p.documentIndex == 0 && p.tokenOffset == 0, "padding piece with provenance")
                padded = p.length
            }
            piece.storeLE(p.shardIndex, at: 0)
            piece.storeLE(p.length, at: 4)
            piece.storeLE(p.documentIndex, at: 8)
            piece.storeLE(p.tokenOffset, at: 16)
            piece += Piece.encodedSize
            position += p.length
            k += 1
            cu.storeLE(position, at: 4 * k)
        }
        precondition(Int(position) == layout.rowTokens, "row \(rowsWritten): pieces cover \(position) tokens, need \(layout.rowTokens)")
        row.storeLE(firstSequence + UInt64(rowsWritten), at: 0)
        row.storeLE(datasetIndex, at: 8)
        row.storeLE(stageIndex, at: 12)
        row.storeLE(UInt32(piecesWritten), at: 16)
        row.storeLE(UInt32(n), at: 20)
        row.storeLE(padded, at: 24)
        row.storeLE(epoch, at: 28)
        rowsWritten += 1
        piecesWritten += n
    }

    /// Zero-fills the padding before the token block and returns `layout.tokenOffset`, the number of
    /// bytes to send before the tokens.
    /// - Precondition: exactly `batchSize` rows and the declared number of pieces were written.
    public func finish() -> Int {
        precondition(rowsWritten == layout.batchSize, "\(rowsWritten) of \(layout.batchSize) rows written")
        precondition(piecesWritten == layout.pieceCount, "\(piecesWritten) of \(layout.pieceCount) pieces written")
        let end = layout.metadataEnd
        (base + end).initializeMemory(as: UInt8.self, repeating: 0, count: layout.tokenOffset - end)
        return layout.tokenOffset
    }
}
