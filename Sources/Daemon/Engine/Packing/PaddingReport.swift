import TokenfeedShards

/// How much of one epoch of a dataset is padding under `bestfit` packing: computed from shard
/// metadata only (document lengths), with the same packer the stream uses, so it is exact.
///
/// A shard packs into the same rows in every epoch (groups never cross a shard), so every epoch
/// of a dataset has the same rows and the same padding.
public struct PaddingReport: Sendable, Hashable {
    /// Rows (sequences) one epoch packs into.
    public var rows: UInt64
    /// Tokens in a row: `sequenceLength + 1`.
    public var rowTokens: Int
    /// Document tokens in the epoch (every token of every document, once).
    public var documentTokens: UInt64

    /// Pad ids in the epoch's rows.
    public var paddedTokens: UInt64 { rows * UInt64(rowTokens) - documentTokens }

    /// Padding as a fraction of all row tokens (0 when there are no rows).
    public var fraction: Double {
        rows == 0 ? 0 : Double(paddedTokens) / Double(rows * UInt64(rowTokens))
    }

    /// Packs one epoch of `folder`'s documents into rows of `sequenceLength + 1` tokens, best fit
    /// from groups of `lookahead` documents, and counts the padding. Metadata only.
    /// - Throws: `ShardError` when a shard's document-end page cannot be read or is corrupt.
    public init(folder: DatasetFolder, sequenceLength: Int, lookahead: Int) throws(ShardError) {
        precondition(sequenceLength >= 1 && lookahead >= 1, "sequence length and look-ahead must be positive")
        var packer = BestFitPacker(rowTokens: sequenceLength + 1)
        var rows: UInt64 = 0
        for shard in folder.shards { rows += try packer.countRows(shard, lookahead: lookahead) }
        self.rows = rows
        self.rowTokens = sequenceLength + 1
        self.documentTokens = folder.tokenCount
    }
}
