import TokenfeedShards
import TokenfeedSystem

/// Packs one rank's batches: plans each sequence (metadata only), then copies its tokens from
/// decompressed frames into the batch's token block, widening uint16 shards when the stream is uint32.
/// Reuses its arrays: no allocation per batch once warmed up.
public struct BatchAssembler {
    public let stream: GlobalStream
    public let slice: RankSlice
    private var planner: SequencePlanner
    /// Records of the last assembled batch, one per sequence.
    public private(set) var records: [SequenceRecord] = []
    /// Pieces of the last assembled batch, indexed by the records.
    public private(set) var pieces: [SequencePiece] = []

    public init(stream: GlobalStream, slice: RankSlice) {
        self.stream = stream
        self.slice = slice
        self.planner = stream.planner()
        records.reserveCapacity(slice.batchSize)
        pieces.reserveCapacity(slice.batchSize * 64)
    }

    /// Bytes of one batch's token block.
    public var tokenBlockBytes: Int { slice.batchSize * stream.rowTokens * stream.tokenWidth.bytes }

    /// Plans `step`'s sequences for this rank (records and pieces), without touching token data.
    /// - Throws: `ShardError` when an index page the plan needs cannot be read or is corrupt.
    public mutating func plan(step: UInt64) throws(ShardError) {
        records.removeAll(keepingCapacity: true)
        pieces.removeAll(keepingCapacity: true)
        for j in 0 ..< slice.batchSize {
            records.append(try planner.plan(sequence: slice.sequence(step: step, j), step: step, appendingTo: &pieces))
        }
    }

    /// Plans `step` and copies its tokens into `tokens` (at least ``tokenBlockBytes`` bytes):
    /// row j holds sequence j's `sequenceLength + 1` tokens — its pieces' tokens, then (bestfit
    /// packing) `paddedTokens` pad ids.
    /// - Throws: `ShardError` when a frame cannot be read or is corrupt.
    public mutating func assemble(step: UInt64, into tokens: UnsafeMutableRawBufferPointer,
                                  frames: some FrameProvider) throws(ShardError) {
        precondition(tokens.count >= tokenBlockBytes, "token block too small")
        try plan(step: step)
        let outWidth = stream.tokenWidth.bytes
        var row = 0
        for record in records {
            var at = row * stream.rowTokens
            for p in Int(record.firstPiece) ..< Int(record.firstPiece + record.pieceCount) {
                let piece = pieces[p]
                try copyTokens(dataset: Int(record.dataset), shard: Int(piece.shard),
                               range: piece.offset ..< piece.offset + UInt64(piece.length), to: tokens, at: at, frames: frames)
                at += Int(piece.length)
            }
            if record.paddedTokens > 0 {
                pad(tokens, from: at, count: Int(record.paddedTokens), width: outWidth)
            }
            row += 1
        }
    }

    /// Writes `count` pad ids from token `start` on.
    private func pad(_ tokens: UnsafeMutableRawBufferPointer, from start: Int, count: Int, width: Int) {
        let id = stream.padToken ?? 0
        if width == 4 {
            for t in start ..< start + count { tokens.storeBytes(of: id.littleEndian, toByteOffset: t * 4, as: UInt32.self) }
        } else {
            let id16 = UInt16(truncatingIfNeeded: id)
            for t in start ..< start + count { tokens.storeBytes(of: id16.littleEndian, toByteOffset: t * 2, as: UInt16.self) }
        }
    }

    /// Copies tokens `range` of shard `shard` of dataset `dataset` into `tokens` from token index
    /// `start` on, at the stream's token width (a uint16 shard is widened in a uint32 stream), reading
    /// the frames through `frames`. For tools that read whole documents (`tokenfeed export --documents`).
    /// - Precondition: `tokens` holds `start + range.count` tokens of the stream's width.
    /// - Throws: `ShardError` when a frame cannot be read or is corrupt.
    public func copyTokens(dataset: Int, shard: Int, range: Range<UInt64>, to tokens: UnsafeMutableRawBufferPointer,
                           at start: Int, frames: some FrameProvider) throws(ShardError) {
        let outWidth = stream.tokenWidth.bytes
        precondition(tokens.count >= (start + range.count) * outWidth, "token buffer too small")
        let metadata = stream.datasets[dataset].shards[shard].metadata
        let inWidth = metadata.tokenWidth.bytes
        let perFrame = UInt64(metadata.tokensPerFrame)
        var t = range.lowerBound
        let end = range.upperBound
        var out = start
        while t < end {
            let f = Int(t / perFrame)
            let frameStart = UInt64(f) * perFrame
            let n = Int(min(end, frameStart + perFrame) - t)
            let bytes = try frames.frame(FrameKey(dataset: dataset, shard: shard, frame: f))
            let from = Int(t - frameStart)
            if inWidth == outWidth {
                UnsafeMutableRawBufferPointer(rebasing: tokens[out * outWidth ..< (out + n) * outWidth])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[from * inWidth ..< (from + n) * inWidth]))
            } else {
                // uint16 shard into a uint32 stream.
                for i in 0 ..< n {
                    let v = UInt32(bytes.loadLE((from + i) * 2, as: UInt16.self))
                    tokens.storeBytes(of: v.littleEndian, toByteOffset: (out + i) * 4, as: UInt32.self)
                }
            }
            t += UInt64(n)
            out += n
        }
    }
}
