/// A run of consecutive tokens of one document of one shard: the unit of provenance.
/// The pieces of a sequence, read from their shards in order, give exactly its tokens.
public struct SequencePiece: Sendable, Hashable {
    /// Shard index within its dataset folder (file-name order).
    public var shard: UInt32
    /// Document index within the shard.
    public var document: UInt64
    /// Token offset within the shard's token stream.
    public var offset: UInt64
    /// Tokens taken.
    public var length: UInt32

    public init(shard: UInt32, document: UInt64, offset: UInt64, length: UInt32) {
        self.shard = shard
        self.document = document
        self.offset = offset
        self.length = length
    }
}

/// What one packed sequence is: where it sits in the global stream and where its tokens came from.
public struct SequenceRecord: Sendable, Hashable {
    /// Global sequence index.
    public var sequence: UInt64
    /// Training step (global batch) the sequence belongs to.
    public var step: UInt64
    public var stage: UInt32
    public var dataset: UInt32
    /// Index of the first piece in the batch's piece table.
    public var firstPiece: UInt32
    public var pieceCount: UInt32
    /// Padding tokens at the end of the row (bestfit packing only; masked out of the loss).
    public var paddedTokens: UInt32
    /// Epoch of the dataset the sequence's first token is in (0 for the first pass).
    public var epoch: UInt32

    public init(sequence: UInt64, step: UInt64, stage: UInt32, dataset: UInt32, firstPiece: UInt32,
                pieceCount: UInt32, paddedTokens: UInt32, epoch: UInt32) {
        self.sequence = sequence
        self.step = step
        self.stage = stage
        self.dataset = dataset
        self.firstPiece = firstPiece
        self.pieceCount = pieceCount
        self.paddedTokens = paddedTokens
        self.epoch = epoch
    }
}
