import TokenfeedMixing
import TokenfeedShards

/// One dataset's token stream: its shards concatenated, epoch after epoch, each epoch in the
/// shard order ``EpochOrder`` gives (epoch 0 in file-name order). Maps a stream position to the
/// shard, offset and document that hold it. Metadata only: document ends come from the shard's
/// index pages (through the page cache; the page in use is kept), nothing is decompressed.
///
/// Keeps the shard order and prefix sums of the last two epochs it was asked about, so walking
/// the stream forwards costs two binary searches a piece.
public struct DatasetStream: Sendable {
    public let name: String
    public let folder: DatasetFolder
    public let seed: UInt64
    /// Tokens in one epoch.
    public let epochTokens: UInt64

    private var cached: [EpochLayout] = []
    /// The document-end page last used (walking forwards stays on it).
    private var locator = DocumentLocator()

    public init(name: String, folder: DatasetFolder, seed: UInt64) {
        precondition(folder.tokenCount > 0, "dataset \(name) holds no tokens")
        self.name = name
        self.folder = folder
        self.seed = seed
        self.epochTokens = folder.tokenCount
    }

    /// Where stream position `p` lies: epoch, shard (index in file-name order), token offset in the
    /// shard, the document holding it and how many tokens remain in that document.
    /// - Throws: `ShardError` when the shard's document-end page cannot be read or is corrupt.
    public mutating func locate(_ p: UInt64) throws(ShardError) -> StreamLocation {
        let epoch = p / epochTokens
        let q = p % epochTokens
        let layout = self.layout(of: epoch)
        // The last position j of the epoch order whose start is <= q.
        var lo = 0, hi = layout.order.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if layout.starts[mid] <= q { lo = mid } else { hi = mid - 1 }
        }
        let shard = layout.order[lo]
        let offset = q - layout.starts[lo]
        let (document, end) = try locator.document(containingToken: offset, shard: shard, of: folder.shards)
        return StreamLocation(epoch: epoch, shard: shard, offset: offset, document: document,
                              remainingInDocument: end - offset)
    }

    private mutating func layout(of epoch: UInt64) -> EpochLayout {
        if let hit = cached.first(where: { $0.epoch == epoch }) { return hit }
        let order = EpochOrder.shardOrder(datasetName: name, epoch: epoch, shardCount: folder.shards.count, seed: seed)
        var starts: [UInt64] = []
        starts.reserveCapacity(order.count)
        var sum: UInt64 = 0
        for s in order {
            starts.append(sum)
            sum += folder.tokenCount(ofShard: s)
        }
        let layout = EpochLayout(epoch: epoch, order: order, starts: starts)
        if cached.count == 2 { cached.removeFirst() }
        cached.append(layout)
        return layout
    }
}

/// Where a dataset-stream position lies.
public struct StreamLocation: Sendable, Hashable {
    public var epoch: UInt64
    /// Shard index in the dataset folder's file-name order.
    public var shard: Int
    /// Token offset in the shard's token stream.
    public var offset: UInt64
    /// Document index within the shard.
    public var document: Int
    /// Tokens from `offset` to the end of the document.
    public var remainingInDocument: UInt64
}

private struct EpochLayout: Sendable {
    var epoch: UInt64
    var order: [Int]
    var starts: [UInt64]
}
