import TokenfeedSystem

/// A zero-copy view of a received Batch frame: tokens are read in place, metadata is read from the
/// frame on demand. Creating the view validates the whole frame once (O(rows + pieces), no allocation),
/// so the accessors cannot fail afterwards.
///
/// The view does not own the bytes; they must stay valid and unchanged while it is used. For
/// `withTokens32`/`withTokens16` the token block must be aligned to the token width in memory,
/// which holds whenever the frame starts at an address aligned to 64 (as `FrameDecoder` arranges).
public struct BatchView {
    /// Row metadata as stored in the rows table.
    public struct Row: Sendable, Hashable {
        /// Global sequence index (`step·W·B + rank·B + row`).
        public var sequenceIndex: UInt64
        /// Dataset index in the Welcome's dataset list.
        public var datasetIndex: UInt32
        /// Stage index in the Welcome's stage list.
        public var stageIndex: UInt32
        /// Index of the row's first piece in the pieces table.
        public var firstPiece: Int
        /// Number of pieces (segments) of the row; its cu_seqlens has `pieceCount + 1` entries.
        public var pieceCount: Int
        /// Padding tokens at the end of the row (bestfit packing); 0 for concatenation packing.
        public var paddedTokens: UInt32
        /// Epoch of the dataset the row's first token is in (0 for the first pass).
        public var epoch: UInt32
    }

    /// The whole frame, header included.
    public let frame: UnsafeRawBufferPointer
    /// The frame header.
    public let header: FrameHeader
    /// The layout of the frame's sections.
    public let layout: BatchLayout
    /// Global step of this batch.
    public let step: UInt64
    /// Rank the batch is for.
    public let rank: UInt32
    /// World size of the session.
    public let worldSize: UInt32
    /// The position after this batch: save it to resume after this batch.
    public let cursorAfter: Cursor

    /// Rows in the batch.
    public var batchSize: Int { layout.batchSize }
    /// Tokens per sequence; each row holds `sequenceLength + 1`.
    public var sequenceLength: Int { layout.sequenceLength }
    /// Bytes per token.
    public var tokenWidth: TokenWidth { layout.tokenWidth }
    /// Pieces over all rows.
    public var pieceCount: Int { layout.pieceCount }

    /// Validates a whole Batch frame (header included) and creates a view of it.
    /// - Parameter expecting: the session's shape and tables, checked when given.
    /// - Throws: `ProtocolError` naming the field and frame offset: header errors, `malformed_frame`
    ///   for any inconsistent field, length, index, cu_seqlens or padding byte, `bad_cursor`.
    public init(frame: UnsafeRawBufferPointer, expecting: BatchExpectation? = nil,
                limits: FrameLimits = .protocolMaximum) throws(ProtocolError) {
        let header = try FrameHeader.decode(frame, limits: limits)
        guard header.type == .batch else {
            throw ProtocolError(.unexpectedMessage, "expected a Batch frame, got \(header.type)")
        }
        guard UInt64(frame.count) == header.frameLength else {
            throw ProtocolError(.malformedFrame, "Batch frame: header says \(header.frameLength) bytes, buffer has \(frame.count)")
        }
        func bad(_ field: String, _ offset: Int, _ what: String) -> ProtocolError {
            ProtocolError(.malformedFrame, "Batch.\(field) at offset \(offset): \(what)", detail: "Batch.\(field)")
        }
        guard frame.count >= BatchLayout.rowsOffset else {
            throw bad("fixed fields", frame.count, "truncated: a Batch frame has at least \(BatchLayout.rowsOffset) bytes, got \(frame.count)")
        }
        let step = frame.loadLE(24, as: UInt64.self)
        let rank = frame.loadLE(32, as: UInt32.self)
        let world = frame.loadLE(36, as: UInt32.self)
        let batch = frame.loadLE(40, as: UInt32.self)
        let length = frame.loadLE(44, as: UInt32.self)
        let widthRaw = frame.loadLE(48, as: UInt8.self)
        let pieces = frame.loadLE(52, as: UInt32.self)
        let tokenOffset = frame.loadLE(56, as: UInt32.self)
        guard world >= 1 else { throw bad("world_size", 36, "must be at least 1, got 0") }
        guard rank < world else { throw bad("rank", 32, "\(rank) is not below world_size \(world)") }
        guard batch >= 1, batch <= UInt32(BatchLayout.maxBatchSize) else {
            throw bad("batch_size", 40, "must be in 1...\(BatchLayout.maxBatchSize), got \(batch)")
        }
        guard length >= 1, length <= Welcome.maxSequenceLength else {
            throw bad("sequence_length", 44, "must be in 1...\(Welcome.maxSequenceLength), got \(length)")
        }
        guard let width = TokenWidth(rawValue: widthRaw) else { throw bad("token_width", 48, "must be 2 or 4, got \(widthRaw)") }
        guard frame.loadLE(49, as: UInt8.self) == 0 else { throw bad("reserved", 49, "must be 0") }
        guard frame.loadLE(50, as: UInt16.self) == 0 else { throw bad("reserved", 50, "must be 0") }
        guard frame.loadLE(60, as: UInt32.self) == 0 else { throw bad("reserved", 60, "must be 0") }
        let maxPieces = UInt64(batch) * (UInt64(length) + 1)
        guard UInt64(pieces) >= UInt64(batch), UInt64(pieces) <= maxPieces else {
            throw bad("piece_count", 52, "must be in \(batch)...\(maxPieces), got \(pieces)")
        }
        let layout = BatchLayout(batchSize: Int(batch), sequenceLength: Int(length), tokenWidth: width, pieceCount: Int(pieces))
        guard Int(tokenOffset) == layout.tokenOffset else {
            throw bad("token_offset", 56, "must be \(layout.tokenOffset) for this shape, got \(tokenOffset)")
        }
        guard frame.count == layout.frameLength else {
            throw bad("payload_length", 16, "a batch of this shape has a \(layout.frameLength)-byte frame, got \(frame.count)")
        }
        let cursor = try Cursor(bytes: UnsafeRawBufferPointer(rebasing: frame[64..<120]), frameOffset: 64)
        let global = UInt64(world) * UInt64(batch)
        guard step < UInt64.max / global, cursor.nextStep == step + 1, cursor.worldSize == world, cursor.batchSize == batch else {
            throw bad("cursor_after", 64, "must be the position after step \(step) for world_size \(world) × batch_size \(batch), got \(cursor)")
        }
        if let e = expecting {
            guard rank == e.rank, world == e.worldSize, batch == e.batchSize else {
                throw bad("rank", 32, "batch is for rank \(rank) of \(world) × \(batch), session is rank \(e.rank) of \(e.worldSize) × \(e.batchSize)")
            }
            guard length == e.sequenceLength, width == e.tokenWidth else {
                throw bad("sequence_length", 44, "batch has \(length) tokens of width \(width.bytes), session has \(e.sequenceLength) of width \(e.tokenWidth.bytes)")
            }
            guard cursor.fingerprint == e.fingerprint else {
                throw bad("cursor_after", 72, "fingerprint 0x\(String(cursor.fingerprint, radix: 16)) differs from the Welcome's 0x\(String(e.fingerprint, radix: 16))")
            }
        }
        // Rows, pieces and cu_seqlens.
        let firstSequence = step * global + UInt64(rank) * UInt64(batch)
        let rowTokens = UInt32(layout.rowTokens)
        var expectedFirstPiece = 0
        for r in 0..<layout.batchSize {
            let at = BatchLayout.rowsOffset + r * BatchLayout.rowRecordSize
            let sequence = frame.loadLE(at, as: UInt64.self)
            guard sequence == firstSequence + UInt64(r) else {
                throw bad("rows[\(r)].sequence_index", at, "must be \(firstSequence + UInt64(r)) (step·W·B + rank·B + row), got \(sequence)")
            }
            let dataset = frame.loadLE(at + 8, as: UInt32.self)
            let stage = frame.loadLE(at + 12, as: UInt32.self)
            if let e = expecting {
                guard Int(dataset) < e.shardCounts.count else {
                    throw bad("rows[\(r)].dataset_index", at + 8, "\(dataset) is not below the Welcome's dataset count \(e.shardCounts.count)")
                }
                guard stage < e.stageCount else {
                    throw bad("rows[\(r)].stage_index", at + 12, "\(stage) is not below the Welcome's stage count \(e.stageCount)")
                }
            }
            let first = frame.loadLE(at + 16, as: UInt32.self)
            guard Int(first) == expectedFirstPiece else {
                throw bad("rows[\(r)].first_piece", at + 16, "must be \(expectedFirstPiece), got \(first)")
            }
            let n = Int(frame.loadLE(at + 20, as: UInt32.self))
            guard n >= 1, expectedFirstPiece + n <= layout.pieceCount else {
                throw bad("rows[\(r)].piece_count", at + 20, "must be in 1...\(layout.pieceCount - expectedFirstPiece), got \(n)")
            }
            let padded = frame.loadLE(at + 24, as: UInt32.self)
            let cuAt = layout.cuSeqlensOffset + (expectedFirstPiece + r) * 4
            guard frame.loadLE(cuAt, as: UInt32.self) == 0 else {
                throw bad("rows[\(r)].cu_seqlens[0]", cuAt, "must be 0")
            }
            var previous: UInt32 = 0
            var sawPadding: UInt32 = 0
            for k in 0..<n {
                let pAt = layout.piecesOffset + (expectedFirstPiece + k) * Piece.encodedSize
                let next = frame.loadLE(cuAt + 4 * (k + 1), as: UInt32.self)
                guard next > previous, next <= rowTokens else {
                    throw bad("rows[\(r)].cu_seqlens[\(k + 1)]", cuAt + 4 * (k + 1), "must be in \(previous + 1)...\(rowTokens), got \(next)")
                }
                let shard = frame.loadLE(pAt, as: UInt32.self)
                let pieceLength = frame.loadLE(pAt + 4, as: UInt32.self)
                guard pieceLength == next - previous else {
                    throw bad("pieces[\(expectedFirstPiece + k)].length", pAt + 4, "must equal cu_seqlens difference \(next - previous), got \(pieceLength)")
                }
                if shard == Piece.paddingShard {
                    guard k == n - 1 else {
                        throw bad("pieces[\(expectedFirstPiece + k)].shard_index", pAt, "a padding piece must be the last piece of its row")
                    }
                    guard frame.loadLE(pAt + 8, as: UInt64.self) == 0, frame.loadLE(pAt + 16, as: UInt64.self) == 0 else {
                        throw bad("pieces[\(expectedFirstPiece + k)].document_index", pAt + 8, "must be 0 in a padding piece")
                    }
                    sawPadding = pieceLength
                } else if let e = expecting, Int(dataset) < e.shardCounts.count, shard >= e.shardCounts[Int(dataset)] {
                    throw bad("pieces[\(expectedFirstPiece + k)].shard_index", pAt, "\(shard) is not below dataset \(dataset)'s shard count \(e.shardCounts[Int(dataset)])")
                }
                previous = next
            }
            guard previous == rowTokens else {
                throw bad("rows[\(r)].cu_seqlens[\(n)]", cuAt + 4 * n, "must be sequence_length + 1 = \(rowTokens), got \(previous)")
            }
            guard padded == sawPadding else {
                throw bad("rows[\(r)].padded_tokens", at + 24, "must equal the length of the row's padding piece (\(sawPadding)), got \(padded)")
            }
            expectedFirstPiece += n
        }
        guard expectedFirstPiece == layout.pieceCount else {
            throw bad("piece_count", 52, "rows use \(expectedFirstPiece) pieces, header says \(layout.pieceCount)")
        }
        for i in layout.metadataEnd..<layout.tokenOffset where frame[i] != 0 {
            throw bad("padding", i, "bytes between the metadata and the token block must be 0")
        }
        self.frame = frame
        self.header = header
        self.layout = layout
        self.step = step
        self.rank = rank
        self.worldSize = world
        self.cursorAfter = cursor
    }

    /// The metadata of row `index`. - Precondition: `0 ≤ index < batchSize`.
    public func row(_ index: Int) -> Row {
        precondition(index >= 0 && index < batchSize, "row \(index) out of range 0..<\(batchSize)")
        let at = BatchLayout.rowsOffset + index * BatchLayout.rowRecordSize
        return Row(sequenceIndex: frame.loadLE(at, as: UInt64.self),
                   datasetIndex: frame.loadLE(at + 8, as: UInt32.self),
                   stageIndex: frame.loadLE(at + 12, as: UInt32.self),
                   firstPiece: Int(frame.loadLE(at + 16, as: UInt32.self)),
                   pieceCount: Int(frame.loadLE(at + 20, as: UInt32.self)),
                   paddedTokens: frame.loadLE(at + 24, as: UInt32.self),
                   epoch: frame.loadLE(at + 28, as: UInt32.self))
    }

    /// Piece `index` of the pieces table (rows' pieces are consecutive). - Precondition: in range.
    public func piece(_ index: Int) -> Piece {
        precondition(index >= 0 && index < pieceCount, "piece \(index) out of range 0..<\(pieceCount)")
        let at = layout.piecesOffset + index * Piece.encodedSize
        return Piece(shardIndex: frame.loadLE(at, as: UInt32.self),
                     documentIndex: frame.loadLE(at + 8, as: UInt64.self),
                     tokenOffset: frame.loadLE(at + 16, as: UInt64.self),
                     length: frame.loadLE(at + 4, as: UInt32.self))
    }

    /// The cu_seqlens of row `index`: `pieceCount + 1` offsets within the row, from 0 to
    /// `sequenceLength + 1`. Position ids are `t − cu_seqlens[j]` for token t of segment j.
    public func cuSeqlens(row index: Int) -> UInt32Column {
        let r = row(index)
        let at = layout.cuSeqlensOffset + (r.firstPiece + index) * 4
        return UInt32Column(base: frame.baseAddress! + at, count: r.pieceCount + 1)
    }

    /// The token block's bytes (little-endian tokens of `tokenWidth` bytes, rows contiguous).
    public var tokenBytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: frame[layout.tokenOffset..<layout.frameLength])
    }

    /// Token `position` of row `row`, widened to 32 bits (no alignment requirement).
    public func token(row: Int, position: Int) -> UInt32 {
        precondition(row >= 0 && row < batchSize && position >= 0 && position < layout.rowTokens, "token index out of range")
        let at = layout.tokenOffset + (row * layout.rowTokens + position) * tokenWidth.bytes
        return tokenWidth == .u32 ? frame.loadLE(at, as: UInt32.self) : UInt32(frame.loadLE(at, as: UInt16.self))
    }

    /// Calls `body` with the token block viewed in place as u32 tokens (`batchSize × (sequenceLength + 1)`).
    /// - Precondition: `tokenWidth == .u32` and the block is 4-byte aligned in memory.
    public func withTokens32<R, E: Error>(_ body: (UnsafeBufferPointer<UInt32>) throws(E) -> R) throws(E) -> R {
        precondition(tokenWidth == .u32, "tokens are \(tokenWidth.bytes) bytes wide")
        return try withTokens(as: UInt32.self, body)
    }

    /// Calls `body` with the token block viewed in place as u16 tokens.
    /// - Precondition: `tokenWidth == .u16` and the block is 2-byte aligned in memory.
    public func withTokens16<R, E: Error>(_ body: (UnsafeBufferPointer<UInt16>) throws(E) -> R) throws(E) -> R {
        precondition(tokenWidth == .u16, "tokens are \(tokenWidth.bytes) bytes wide")
        return try withTokens(as: UInt16.self, body)
    }

    private func withTokens<T, R, E: Error>(as: T.Type, _ body: (UnsafeBufferPointer<T>) throws(E) -> R) throws(E) -> R {
        let bytes = tokenBytes
        precondition(Int(bitPattern: bytes.baseAddress) % MemoryLayout<T>.alignment == 0,
                     "token block is not aligned in memory; start the frame at a 64-byte aligned address")
        let typed = bytes.baseAddress!.assumingMemoryBound(to: T.self)
        return try body(UnsafeBufferPointer(start: typed, count: bytes.count / MemoryLayout<T>.stride))
    }
}
