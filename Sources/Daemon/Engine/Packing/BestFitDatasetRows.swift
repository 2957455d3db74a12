import TokenfeedMixing
import TokenfeedShards

/// One dataset's stream of bestfit rows, with random access: row `k` is a pure function of the
/// dataset's shard metadata, the curriculum seed, the row length, the look-ahead and `k`.
///
/// The dataset's documents are read as its stream is (epoch after epoch, each epoch in the shard
/// order ``EpochOrder`` gives, each shard's documents in order). Each shard's documents are cut into
/// consecutive groups of `lookahead` documents (the last group of a shard may be shorter; groups
/// never cross a shard, so a shard packs into the same rows in every epoch), and each group is
/// packed on its own by ``BestFitPacker``. Rows follow one another group after group, shard after
/// shard, epoch after epoch.
///
/// Finding row `k` needs the row counts of the shards before it (packing their groups, metadata
/// only) — in epoch 0 the shards up to the position, from epoch 1 on every shard of the dataset,
/// since an epoch's row count fixes where epochs start. Counts are made on all cores and shared
/// through the stream's ``BestFitRowCache``. Within the shard, the shard's ``BestFitCheckpoints``
/// (the rows before every K-th group, taken when it was counted) give the checkpoint at or before the
/// row; packing resumes there, so finding a row packs at most K groups (≈ 4,096 documents), wherever
/// it lies in the shard. Walking forwards packs each group once; a far jump counts every shard of the
/// curriculum in one pass, and with a cache directory the counts and checkpoints persist
/// (``BestFitRowStore``), so a resume at any depth costs what one at step 1 does.
struct BestFitDatasetRows: Sendable {
    let dataset: Int
    let name: String
    let folder: DatasetFolder
    let seed: UInt64
    let lookahead: Int
    let cache: BestFitRowCache
    private var packer: BestFitPacker

    /// Rows before shard `s` in epoch 0 (file-name order), for the shards counted so far.
    private var epoch0Starts: [UInt64] = [0]
    /// Rows in one epoch, once every shard is counted.
    private var epochRows: UInt64?
    private var layouts: [RowLayout] = []

    /// The shard whose checkpoints and groups ``checkpoints`` and ``groupStarts`` describe.
    private var tableShard = -1
    /// `tableShard`'s checkpoints: rows before group `j · K`, `j = 1…`.
    private var checkpoints: [UInt64] = []
    /// The first group ``groupStarts`` describes (a multiple of K), or −1.
    private var windowGroup = -1
    /// Rows before group `windowGroup + i` of `tableShard`, for the groups packed from `windowGroup`
    /// on (one more entry than groups).
    private var groupStarts: [UInt64] = [0]
    /// The group of `tableShard` the packer holds, and whether its rows are laid out.
    private var packedGroup = -1
    private var materialized = false
    /// Shard counts missing from the cache during the current ``locate(_:)``.
    private var missesInThisLocate = 0
    /// Groups packed to find rows so far (the work a lookup costs: at most K + 1 groups a row).
    private(set) var groupsPacked = 0

    init(dataset: Int, name: String, folder: DatasetFolder, seed: UInt64, rowTokens: Int, lookahead: Int,
         cache: BestFitRowCache) {
        precondition(lookahead >= 1, "bestfit look-ahead must be at least one document")
        self.dataset = dataset
        self.name = name
        self.folder = folder
        self.seed = seed
        self.lookahead = lookahead
        self.cache = cache
        self.packer = BestFitPacker(rowTokens: rowTokens)
    }

    /// Appends row `k`'s pieces (stream order) to `pieces`; returns the epoch the row is in and
    /// how many padding tokens end it.
    /// - Throws: `ShardError` when a shard's document-end page cannot be read or is corrupt.
    mutating func row(_ k: UInt64, appendingTo pieces: inout [SequencePiece]) throws(ShardError) -> (epoch: UInt64, paddedTokens: Int) {
        let (epoch, shard, q) = try locate(k)
        let r = try rowInGroup(shard: shard, row: q)
        for p in packer.rowStarts[r] ..< packer.rowStarts[r + 1] {
            let piece = packer.pieces[p]
            pieces.append(SequencePiece(shard: UInt32(shard), document: UInt64(piece.document),
                                        offset: piece.offset, length: piece.length))
        }
        return (epoch, packer.rowTokens - packer.rowFill[r])
    }

    /// The epoch, shard and row within the shard of row `k`.
    private mutating func locate(_ k: UInt64) throws(ShardError) -> (epoch: UInt64, shard: Int, row: UInt64) {
        let shardCount = folder.shards.count
        missesInThisLocate = 0
        if epochRows == nil {
            while epoch0Starts.count <= shardCount && epoch0Starts.last! <= k {
                let s = epoch0Starts.count - 1
                epoch0Starts.append(epoch0Starts.last! + (try rows(ofShard: s)))
            }
            if epoch0Starts.count == shardCount + 1 { epochRows = epoch0Starts.last! }
            if k < epoch0Starts.last! {
                let j = Self.firstAbove(k, in: epoch0Starts)
                return (0, j - 1, k - epoch0Starts[j - 1])
            }
        }
        let perEpoch = epochRows!
        precondition(perEpoch > 0, "dataset \(name) packs into no rows")
        let epoch = k / perEpoch
        let q = k % perEpoch
        let layout = try self.layout(of: epoch)
        let j = Self.firstAbove(q, in: layout.starts)
        return (epoch, layout.order[j - 1], q - layout.starts[j - 1])
    }

    /// The smallest `j ≥ 1` with `starts[j] > value` (`starts` ascending, `starts[0] ≤ value < starts.last`).
    private static func firstAbove(_ value: UInt64, in starts: [UInt64]) -> Int {
        var lo = 1, hi = starts.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if starts[mid] > value { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// Rows shard `s` packs into: from the shared cache, else counted there — with the next shards
    /// of the file-name order, on all cores, since a planner that needs one usually needs the next.
    /// A second miss within one ``locate(_:)`` means a far jump (the row lies more than one batch of
    /// shards past what is counted, or in a later epoch): then every shard of every dataset is counted
    /// in one parallel pass (``BestFitRowCache/countAllOnce()``), once per process.
    private mutating func rows(ofShard s: Int) throws(ShardError) -> UInt64 {
        if let known = cache.rows(dataset: dataset, shard: s) { return known }
        if missesInThisLocate > 0 {
            try cache.countAllOnce()
            if let known = cache.rows(dataset: dataset, shard: s) { return known }
        }
        missesInThisLocate += 1
        try cache.count(dataset: dataset, shards: s ..< min(folder.shards.count, s + BestFitRowCache.batch))
        return cache.rows(dataset: dataset, shard: s)!
    }

    /// Packs (when needed) the group of `shard` holding its row `q` and returns the row's index in it:
    /// from the last checkpoint at or before the row, at most K groups.
    /// - Throws: `ShardError` when the shard's index pages cannot be read or are corrupt, or its
    ///   groups end before row `q` (counts that do not match the shard).
    private mutating func rowInGroup(shard: Int, row q: UInt64) throws(ShardError) -> Int {
        let reader = folder.shards[shard]
        let metadata = reader.metadata
        if tableShard != shard {
            checkpoints = try cache.checkpoints(dataset: dataset, shard: shard)
            tableShard = shard
            windowGroup = -1
            packedGroup = -1
        }
        // The last checkpoint j (rows before group j·K) at or before q; j = 0 is the shard's start.
        var lo = 0, hi = checkpoints.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if checkpoints[mid] <= q { lo = mid + 1 } else { hi = mid }
        }
        let firstGroup = lo * cache.groupsPerCheckpoint
        if windowGroup != firstGroup || q < groupStarts[0] {
            windowGroup = firstGroup
            groupStarts.removeAll(keepingCapacity: true)
            groupStarts.append(lo == 0 ? 0 : checkpoints[lo - 1])
        }
        let groups = groupCount(metadata)
        while groupStarts.last! <= q && windowGroup + groupStarts.count - 1 < groups {
            let g = windowGroup + groupStarts.count - 1
            groupStarts.append(groupStarts.last! + UInt64(try packer.pack(reader, documents: documents(ofGroup: g, metadata))))
            groupsPacked += 1
            packedGroup = g
            materialized = false
        }
        guard q < groupStarts.last! else {
            throw ShardError(path: reader.path, "bestfit (dataset \(name)): row \(q) is past the \(groupStarts.last!) rows its groups pack into "
                                               + "(row counts that do not match the shard)")
        }
        let g = windowGroup + Self.firstAbove(q, in: groupStarts) - 1
        if packedGroup != g {
            try packer.pack(reader, documents: documents(ofGroup: g, metadata))
            groupsPacked += 1
            packedGroup = g
            materialized = false
        }
        if !materialized {
            packer.materialize()
            materialized = true
        }
        return Int(q - groupStarts[g - windowGroup])
    }

    private func groupCount(_ metadata: ShardMetadata) -> Int {
        (metadata.documentCount + lookahead - 1) / lookahead
    }

    private func documents(ofGroup g: Int, _ metadata: ShardMetadata) -> Range<Int> {
        g * lookahead ..< min(metadata.documentCount, (g + 1) * lookahead)
    }

    /// Epoch `epoch`'s shard order and the rows before each of its shards (last two epochs kept).
    private mutating func layout(of epoch: UInt64) throws(ShardError) -> RowLayout {
        if let hit = layouts.first(where: { $0.epoch == epoch }) { return hit }
        let order = EpochOrder.shardOrder(datasetName: name, epoch: epoch, shardCount: folder.shards.count, seed: seed)
        var starts: [UInt64] = [0]
        starts.reserveCapacity(order.count + 1)
        for s in order { starts.append(starts.last! + (try rows(ofShard: s))) }
        let layout = RowLayout(epoch: epoch, order: order, starts: starts)
        if layouts.count == 2 { layouts.removeFirst() }
        layouts.append(layout)
        return layout
    }
}

/// One epoch's shard order and the rows before each of its shards (`order.count + 1` entries).
private struct RowLayout: Sendable {
    var epoch: UInt64
    var order: [Int]
    var starts: [UInt64]
}
