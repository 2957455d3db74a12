import TokenfeedProtocol

/// One received batch, read in place: the tokens and metadata are views of the frame in the
/// client's receive buffer — nothing is copied. Valid until the next call on the client that
/// produced it (`next()` or the next iteration of its `batches`).
public struct ClientBatch {
    /// The validated frame.
    public let view: BatchView
    /// The session's Welcome, for dataset, stage and shard names.
    public let welcome: Welcome

    /// Global step.
    public var step: UInt64 { view.step }
    /// The session's rank.
    public var rank: UInt32 { view.rank }
    /// Rows (sequences) in the batch.
    public var batchSize: Int { view.batchSize }
    /// Tokens per sequence; each row holds `sequenceLength + 1` (inputs are the first `sequenceLength`, labels the last).
    public var sequenceLength: Int { view.sequenceLength }
    /// Bytes per token.
    public var tokenWidth: TokenWidth { view.tokenWidth }
    /// The position after this batch: save it to resume after this batch.
    public var cursorAfter: Cursor { view.cursorAfter }
    /// The token block: `batchSize × (sequenceLength + 1)` little-endian tokens, rows contiguous, 64-byte aligned.
    public var tokenBytes: UnsafeRawBufferPointer { view.tokenBytes }

    /// Calls `body` with the tokens viewed in place as `UInt32`. - Precondition: 4-byte tokens.
    public func withTokens32<R, E: Error>(_ body: (UnsafeBufferPointer<UInt32>) throws(E) -> R) throws(E) -> R {
        try view.withTokens32(body)
    }

    /// Calls `body` with the tokens viewed in place as `UInt16`. - Precondition: 2-byte tokens.
    public func withTokens16<R, E: Error>(_ body: (UnsafeBufferPointer<UInt16>) throws(E) -> R) throws(E) -> R {
        try view.withTokens16(body)
    }

    /// Token `position` of row `row`, widened to 32 bits.
    public func token(row: Int, position: Int) -> UInt32 { view.token(row: row, position: position) }

    /// Row `index`'s metadata: global sequence index, dataset and stage indices, pieces, padding, epoch.
    public func row(_ index: Int) -> BatchView.Row { view.row(index) }

    /// Row `index`'s cu_seqlens (document boundaries within the row, from 0 to `sequenceLength + 1`).
    public func cuSeqlens(row index: Int) -> UInt32Column { view.cuSeqlens(row: index) }

    /// Row `index`'s segments in order (data pieces, then padding if any).
    public func pieces(row index: Int) -> [Piece] {
        let r = view.row(index)
        return (r.firstPiece ..< r.firstPiece + r.pieceCount).map(view.piece)
    }

    /// The name of row `index`'s dataset.
    public func datasetName(row index: Int) -> String { welcome.datasets[Int(view.row(index).datasetIndex)].name }

    /// The name of row `index`'s stage.
    public func stageName(row index: Int) -> String { welcome.stages[Int(view.row(index).stageIndex)].name }

    /// The shard file (relative to the daemon's data root) a data piece of row `index`'s dataset came from.
    public func shardPath(row index: Int, piece: Piece) -> String {
        welcome.datasets[Int(view.row(index).datasetIndex)].shardPaths[Int(piece.shardIndex)]
    }
}
