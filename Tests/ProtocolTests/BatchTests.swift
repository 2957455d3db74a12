import Testing
import TokenfeedMixing
import TokenfeedProtocol

@Suite struct BatchTests {
    /// Writes a batch with BatchHeaderWriter into one reused buffer, the way a server does, and
    /// checks the view sees the same metadata and the tokens in place.
    @Test(arguments: 0..<4)
    func writerAndViewAgreeOnRandomBatches(seed: UInt64) throws {
        var rng = SplitMix64(seed: 100 + seed)
        let metadata = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 64)
        defer { metadata.deallocate() }
        for _ in 0..<100 {
            let batch = RandomMessages.batch(&rng)
            let layout = batch.layout
            var writer = BatchHeaderWriter(into: metadata, step: batch.step, rank: batch.rank, worldSize: batch.worldSize,
                                           batchSize: UInt32(batch.rows.count), sequenceLength: batch.sequenceLength,
                                           tokenWidth: batch.tokenWidth, pieceCount: layout.pieceCount,
                                           fingerprint: batch.fingerprint, quarantineDigest: batch.quarantineDigest)
            for row in batch.rows { writer.appendRow(datasetIndex: row.datasetIndex, stageIndex: row.stageIndex, epoch: row.epoch, pieces: row.pieces) }
            let headerBytes = writer.finish()
            #expect(headerBytes == layout.tokenOffset && headerBytes % 64 == 0)
            // The owned encoder produces the same header+metadata bytes.
            let full = Message.batch(batch).encodeFrame()
            #expect(Array(metadata[0..<headerBytes]) == Array(full[0..<headerBytes]))
            #expect(full.count == layout.frameLength)

            // Receive into a 64-aligned buffer and view in place.
            let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: full.count, alignment: 64)
            defer { frame.deallocate() }
            frame.copyBytes(from: full)
            let view = try BatchView(frame: UnsafeRawBufferPointer(frame))
            #expect(view.cursorAfter == batch.cursorAfter)
            let global = UInt64(batch.worldSize) * UInt64(batch.rows.count)
            for (r, row) in batch.rows.enumerated() {
                let meta = view.row(r)
                #expect(meta.sequenceIndex == batch.step * global + UInt64(batch.rank) * UInt64(batch.rows.count) + UInt64(r))
                #expect(meta.datasetIndex == row.datasetIndex && meta.stageIndex == row.stageIndex)
                #expect(meta.paddedTokens == row.paddedTokens && meta.epoch == row.epoch)
                #expect(Array(view.cuSeqlens(row: r)) == row.cuSeqlens)
                #expect((meta.firstPiece..<(meta.firstPiece + meta.pieceCount)).map(view.piece) == row.pieces)
            }
            let inPlace: [UInt32] = batch.tokenWidth == .u32 ? view.withTokens32 { Array($0) } : view.withTokens16 { $0.map(UInt32.init) }
            #expect(inPlace == batch.tokens)
            #expect(Int(bitPattern: view.tokenBytes.baseAddress) % 64 == 0)
        }
    }

    @Test func expectationChecksSessionShapeAndTableIndices() throws {
        let hello = Hello(rank: 1, worldSize: 2, batchSize: 2, initialCredits: 1)
        let expectation = BatchExpectation(hello: hello, welcome: Examples.welcome)
        let frame = Message.batch(Examples.batch).encodeFrame()
        try frame.withUnsafeBytes { buffer in _ = try BatchView(frame: buffer, expecting: expectation) }

        var wrongShard = Examples.batch
        wrongShard.rows[1].pieces[0].shardIndex = 1  // dataset "code" has one shard
        let shardError = protocolError {
            try Message.batch(wrongShard).encodeFrame().withUnsafeBytes { b in _ = try BatchView(frame: b, expecting: expectation) }
        }
        #expect(shardError?.message.contains("pieces[2].shard_index") == true)

        var wrongRank = expectation
        wrongRank.rank = 0
        let rankError = protocolError {
            try frame.withUnsafeBytes { b in _ = try BatchView(frame: b, expecting: wrongRank) }
        }
        #expect(rankError?.code == .malformedFrame)
    }

    @Test func viewRejectsInconsistentMetadataWithFieldAndOffset() {
        let frame = Message.batch(Examples.batch).encodeFrame()
        let layout = Examples.batch.layout
        func mutated(_ change: (inout [UInt8]) -> Void) -> ProtocolError? {
            var bytes = frame
            change(&bytes)
            return protocolError { _ = try Batch(frame: bytes) }
        }
        // Sequence index of row 1.
        let seq = mutated { $0[120 + 32] &+= 1 }
        #expect(seq?.message == "Batch.rows[1].sequence_index at offset 152: must be 15 (step·W·B + rank·B + row), got 16")
        // A cu_seqlens entry disagreeing with the piece length.
        let cu = mutated { $0[layout.cuSeqlensOffset + 4] = 4 }
        #expect(cu?.message.contains("pieces[0].length") == true)
        // padded_tokens disagreeing with the padding piece.
        let pad = mutated { $0[120 + 32 + 24] = 1 }
        #expect(pad?.message.contains("rows[1].padded_tokens") == true)
        // A non-zero padding byte before the token block.
        let zero = mutated { $0[layout.metadataEnd] = 1 }
        #expect(zero?.message.contains("Batch.padding at offset \(layout.metadataEnd)") == true)
        // token_offset not canonical.
        let offset = mutated { $0[56] = 0 }
        #expect(offset?.message.contains("token_offset") == true)
    }

    @Test func maximumTokenOffsetBoundsEveryBatchOfAShape() {
        let bound = BatchLayout.maximumTokenOffset(batchSize: 4, sequenceLength: 16)
        for pieces in 4...(4 * 17) {
            #expect(BatchLayout(batchSize: 4, sequenceLength: 16, tokenWidth: .u32, pieceCount: pieces).tokenOffset <= bound)
        }
    }
}
