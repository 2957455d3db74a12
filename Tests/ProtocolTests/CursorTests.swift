import Testing
import TokenfeedMixing
import TokenfeedProtocol
import TokenfeedSystem

@Suite struct CursorTests {
    @Test func roundTripsThroughBytesAndText() throws {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<200 {
            let world = UInt32.random(in: 1...512, using: &rng)
            let batch = UInt32.random(in: 1...64, using: &rng)
            let cursor = Cursor(fingerprint: rng.next(), nextStep: UInt64.random(in: 0...1 << 30, using: &rng),
                                worldSize: world, batchSize: batch,
                                quarantineDigest: Bool.random(using: &rng) ? 0 : rng.next())
            #expect(cursor.bytes.count == Cursor.size)
            #expect(try Cursor(bytes: cursor.bytes) == cursor)
            #expect(try Cursor(text: cursor.text) == cursor)
            #expect(try Cursor(text: "  " + cursor.text.uppercased().replacingOccurrences(of: "TFC1-", with: "tfc1-") + "\n") == cursor)
            #expect(cursor.nextSequence == cursor.nextStep * UInt64(world) * UInt64(batch))
        }
    }

    @Test func everySingleBitFlipIsDetected() {
        let bytes = Examples.resumeCursor.bytes
        for bit in 0..<(bytes.count * 8) {
            var flipped = bytes
            flipped[bit / 8] ^= 1 << UInt8(bit % 8)
            let error = protocolError { _ = try Cursor(bytes: flipped) }
            #expect(error?.code == .badCursor, "bit \(bit) flip not detected")
        }
    }

    @Test func rejectsInconsistentPositionEvenWithValidChecksum() {
        var bytes = Examples.resumeCursor.bytes
        bytes[24] &+= 1  // next_sequence no longer next_step × W × B
        let crc = bytes.withUnsafeBytes { crc32(UnsafeRawBufferPointer(rebasing: $0[0..<52])) }
        for i in 0..<4 { bytes[52 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
        let error = protocolError { _ = try Cursor(bytes: bytes) }
        #expect(error?.code == .badCursor)
        #expect(error?.message.contains("next_sequence") == true)
    }

    @Test func rejectsBadText() {
        let good = Examples.resumeCursor.text
        for bad in ["", "tfc2-" + good.dropFirst(5), String(good.dropLast()), good + "0",
                    String(good.prefix(20)) + "g" + String(good.dropFirst(21))] {
            let error = protocolError { _ = try Cursor(text: bad) }
            #expect(error?.code == .badCursor, "accepted \(bad)")
        }
        let error = protocolError { _ = try Cursor(text: String(good.prefix(20)) + "g" + String(good.dropFirst(21))) }
        #expect(error?.message.contains("column 21") == true)
    }

    @Test func resumeWithAnotherWorldSizeKeepsTheGlobalPosition() {
        let cursor = Cursor(fingerprint: 1, nextStep: 10, worldSize: 8, batchSize: 4)  // sequence 320
        #expect(cursor.resumeStep(worldSize: 4, batchSize: 8) == 10)
        #expect(cursor.resumeStep(worldSize: 16, batchSize: 4) == 5)
        #expect(cursor.resumeStep(worldSize: 3, batchSize: 7) == nil)  // 320 is not a multiple of 21
    }
}
