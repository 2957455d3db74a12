/// How a packed batch is laid out in a ring slot, and a read-only view of one.
///
///     offset 0                 token block: batchSize rows of (sequenceLength + 1) tokens, little-endian,
///                              rows contiguous — sent to clients as it is
///     recordsOffset            batchSize `SequenceRecord`s
///     piecesOffset             u64 piece count, then the pieces (`SequencePiece`)
///     step (u64) at stepOffset
///
/// Every region starts on a 64-byte boundary.
public struct PackedBatchLayout: Sendable, Hashable {
    public let batchSize: Int
    public let rowTokens: Int
    public let tokenWidth: Int
    /// The most pieces a batch can have: one per token (documents of one token).
    public let pieceCapacity: Int

    public init(batchSize: Int, rowTokens: Int, tokenWidth: Int) {
        self.batchSize = batchSize
        self.rowTokens = rowTokens
        self.tokenWidth = tokenWidth
        self.pieceCapacity = batchSize * rowTokens
    }

    public var tokenBytes: Int { batchSize * rowTokens * tokenWidth }
    public var recordsOffset: Int { roundUp(tokenBytes) }
    public var piecesOffset: Int { roundUp(recordsOffset + batchSize * MemoryLayout<SequenceRecord>.stride) }
    public var capacity: Int { roundUp(piecesOffset + 8 + pieceCapacity * MemoryLayout<SequencePiece>.stride) }

    private func roundUp(_ n: Int) -> Int { (n + 63) & ~63 }

    /// Writes the records and pieces of a batch after its tokens.
    public func storeMetadata(records: [SequenceRecord], pieces: [SequencePiece], into slot: UnsafeMutableRawBufferPointer) {
        precondition(records.count == batchSize && pieces.count <= pieceCapacity && slot.count >= capacity)
        let base = slot.baseAddress!
        records.withUnsafeBytes { base.advanced(by: recordsOffset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        base.storeBytes(of: UInt64(pieces.count), toByteOffset: piecesOffset, as: UInt64.self)
        pieces.withUnsafeBytes { if $0.count > 0 { base.advanced(by: piecesOffset + 8).copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
    }
}

/// A read-only view of a packed batch in a slot: tokens, records and pieces, without copying.
public struct PackedBatch {
    public let layout: PackedBatchLayout
    public let bytes: UnsafeRawBufferPointer

    public init(layout: PackedBatchLayout, bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= layout.capacity)
        self.layout = layout
        self.bytes = bytes
    }

    /// The token block, as it goes on the wire.
    public var tokens: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[..<layout.tokenBytes]) }

    public var records: UnsafeBufferPointer<SequenceRecord> {
        UnsafeBufferPointer(start: bytes.baseAddress!.advanced(by: layout.recordsOffset).assumingMemoryBound(to: SequenceRecord.self),
                            count: layout.batchSize)
    }

    public var pieces: UnsafeBufferPointer<SequencePiece> {
        let count = Int(bytes.load(fromByteOffset: layout.piecesOffset, as: UInt64.self))
        return UnsafeBufferPointer(start: bytes.baseAddress!.advanced(by: layout.piecesOffset + 8).assumingMemoryBound(to: SequencePiece.self),
                                   count: count)
    }

    /// The pieces of record `j`.
    public func pieces(of j: Int) -> UnsafeBufferPointer<SequencePiece> {
        let r = records[j]
        return UnsafeBufferPointer(rebasing: pieces[Int(r.firstPiece) ..< Int(r.firstPiece + r.pieceCount)])
    }

    /// The step the batch belongs to.
    public var step: UInt64 { records[0].step }
}
