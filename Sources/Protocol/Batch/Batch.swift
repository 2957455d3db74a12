import TokenfeedSystem

/// An owned Batch message: the convenient, copying form for tools and tests. The hot paths use
/// `BatchHeaderWriter` (sending) and `BatchView` (receiving) instead.
public struct Batch: WireMessage, Hashable {
    public static let messageType = MessageType.batch

    /// One row's metadata; its global sequence index follows from the batch's step, rank and position.
    public struct Row: Sendable, Hashable {
        /// Dataset index in the Welcome's list.
        public var datasetIndex: UInt32
        /// Stage index in the Welcome's list.
        public var stageIndex: UInt32
        /// Epoch of the dataset the row's first token is in.
        public var epoch: UInt32
        /// The row's segments in order, covering `sequenceLength + 1` tokens.
        public var pieces: [Piece]

        /// Creates a row.
        public init(datasetIndex: UInt32, stageIndex: UInt32, epoch: UInt32 = 0, pieces: [Piece]) {
            self.datasetIndex = datasetIndex
            self.stageIndex = stageIndex
            self.epoch = epoch
            self.pieces = pieces
        }

        /// Padding tokens at the end of the row.
        public var paddedTokens: UInt32 { pieces.last.map { $0.isPadding ? $0.length : 0 } ?? 0 }

        /// The row's cu_seqlens (`pieces.count + 1` entries from 0 to `sequenceLength + 1`).
        public var cuSeqlens: [UInt32] {
            var out: [UInt32] = [0]
            for p in pieces { out.append(out.last! + p.length) }
            return out
        }
    }

    /// Global step.
    public var step: UInt64
    /// Rank the batch is for.
    public var rank: UInt32
    /// World size of the session.
    public var worldSize: UInt32
    /// Tokens per sequence; rows hold one more.
    public var sequenceLength: UInt32
    /// Bytes per token on the wire.
    public var tokenWidth: TokenWidth
    /// Fingerprint stored in the cursor after the batch.
    public var fingerprint: UInt64
    /// Quarantine digest stored in the cursor after the batch.
    public var quarantineDigest: UInt64
    /// Rows; their count is the batch size.
    public var rows: [Row]
    /// `rows.count × (sequenceLength + 1)` tokens, row after row (widened to 32 bits).
    public var tokens: [UInt32]

    /// Creates a batch.
    public init(step: UInt64, rank: UInt32, worldSize: UInt32, sequenceLength: UInt32, tokenWidth: TokenWidth,
                fingerprint: UInt64, quarantineDigest: UInt64 = 0, rows: [Row], tokens: [UInt32]) {
        self.step = step
        self.rank = rank
        self.worldSize = worldSize
        self.sequenceLength = sequenceLength
        self.tokenWidth = tokenWidth
        self.fingerprint = fingerprint
        self.quarantineDigest = quarantineDigest
        self.rows = rows
        self.tokens = tokens
    }

    /// The cursor after this batch.
    public var cursorAfter: Cursor {
        Cursor(fingerprint: fingerprint, nextStep: step + 1, worldSize: worldSize, batchSize: UInt32(rows.count),
               quarantineDigest: quarantineDigest)
    }

    /// The frame's layout.
    public var layout: BatchLayout {
        BatchLayout(batchSize: rows.count, sequenceLength: Int(sequenceLength), tokenWidth: tokenWidth,
                    pieceCount: rows.reduce(0) { $0 + $1.pieces.count })
    }

    /// Appends the payload (via `BatchHeaderWriter`, then the tokens).
    /// - Precondition: the rows and tokens are consistent (see `BatchHeaderWriter.appendRow`);
    ///   u16 tokens fit in 16 bits.
    public func encodePayload(into bytes: inout [UInt8]) {
        let layout = self.layout
        precondition(tokens.count == rows.count * layout.rowTokens, "expected \(rows.count * layout.rowTokens) tokens, got \(tokens.count)")
        var frame = [UInt8](repeating: 0, count: layout.frameLength)
        frame.withUnsafeMutableBytes { buffer in
            var writer = BatchHeaderWriter(into: buffer, step: step, rank: rank, worldSize: worldSize,
                                           batchSize: UInt32(rows.count), sequenceLength: sequenceLength,
                                           tokenWidth: tokenWidth, pieceCount: layout.pieceCount,
                                           fingerprint: fingerprint, quarantineDigest: quarantineDigest)
            for row in rows { writer.appendRow(datasetIndex: row.datasetIndex, stageIndex: row.stageIndex, epoch: row.epoch, pieces: row.pieces) }
            let offset = writer.finish()
            let out = buffer.baseAddress! + offset
            for (i, t) in tokens.enumerated() {
                if tokenWidth == .u32 {
                    out.storeLE(t, at: 4 * i)
                } else {
                    precondition(t <= 0xFFFF, "token \(t) does not fit in 16 bits")
                    out.storeLE(UInt16(t), at: 2 * i)
                }
            }
        }
        bytes.append(contentsOf: frame[FrameHeader.size...])
    }

    /// Copies a validated view into an owned batch.
    public init(_ view: BatchView) {
        step = view.step
        rank = view.rank
        worldSize = view.worldSize
        sequenceLength = UInt32(view.sequenceLength)
        tokenWidth = view.tokenWidth
        fingerprint = view.cursorAfter.fingerprint
        quarantineDigest = view.cursorAfter.quarantineDigest
        rows = (0..<view.batchSize).map { r in
            let row = view.row(r)
            return Row(datasetIndex: row.datasetIndex, stageIndex: row.stageIndex, epoch: row.epoch,
                       pieces: (row.firstPiece..<(row.firstPiece + row.pieceCount)).map(view.piece))
        }
        var tokens: [UInt32] = []
        tokens.reserveCapacity(view.batchSize * (view.sequenceLength + 1))
        for r in 0..<view.batchSize {
            for t in 0...view.sequenceLength { tokens.append(view.token(row: r, position: t)) }
        }
        self.tokens = tokens
    }

    /// Decodes and validates a Batch payload (copies it behind a header, then uses `BatchView`).
    /// - Throws: every error `BatchView.init` throws.
    public init(payload: UnsafeRawBufferPointer) throws(ProtocolError) {
        var frame: [UInt8] = []
        frame.reserveCapacity(FrameHeader.size + payload.count)
        FrameHeader(type: .batch, payloadLength: UInt64(payload.count)).append(to: &frame)
        frame.append(contentsOf: payload)
        self = try withBytes(of: frame) { buffer throws(ProtocolError) in Batch(try BatchView(frame: buffer)) }
    }
}
