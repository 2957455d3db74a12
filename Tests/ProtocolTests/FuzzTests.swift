import Testing
import TokenfeedMixing
import TokenfeedProtocol

/// Hostile input: decoders must throw a ProtocolError, never trap, and never accept a
/// non-canonical frame (whatever decodes re-encodes to the same bytes).
@Suite struct FuzzTests {
    static var corpus: [[UInt8]] {
        var rng = SplitMix64(seed: 11)
        return Examples.frames.map { $0.message.encodeFrame(requestID: $0.requestID) }
            + (0..<16).map { _ in RandomMessages.message(&rng).encodeFrame() }
    }

    /// Decoding `bytes` either throws or yields a message that re-encodes to exactly `bytes`.
    func checkCanonical(_ bytes: [UInt8]) {
        do {
            let (header, message) = try Message.decode(frame: bytes)
            #expect(message.encodeFrame(requestID: header.requestID) == bytes)
        } catch {
            #expect(error.code.isKnown)
            #expect(!error.message.isEmpty)
        }
    }

    @Test func everyTruncationThrows() {
        for frame in Self.corpus {
            for length in 0..<frame.count {
                let prefix = Array(frame[0..<length])
                #expect(protocolError { _ = try Message.decode(frame: prefix) } != nil)
            }
        }
    }

    @Test func everySingleBitFlipThrowsOrStaysCanonical() {
        for frame in Self.corpus.prefix(Examples.frames.count) {
            for bit in 0..<(frame.count * 8) {
                var flipped = frame
                flipped[bit / 8] ^= 1 << UInt8(bit % 8)
                checkCanonical(flipped)
            }
        }
    }

    @Test func randomByteMutationsThrowOrStayCanonical() {
        var rng = SplitMix64(seed: 12)
        let corpus = Self.corpus
        for _ in 0..<20_000 {
            var bytes = corpus.randomElement(using: &rng)!
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                bytes[i] = Bool.random(using: &rng) ? UInt8.random(in: 0...255, using: &rng) : [0, 0xFF, 0x7F, 0x80].randomElement(using: &rng)!
            }
            checkCanonical(bytes)
        }
    }

    @Test func randomGarbageIntoTheStreamDecoderNeverTraps() {
        var rng = SplitMix64(seed: 13)
        for round in 0..<2_000 {
            let decoder = FrameDecoder(initialCapacity: 64)
            // Half the rounds start with a valid header so payload parsing is reached.
            var bytes: [UInt8] = round % 2 == 0 ? Self.corpus.randomElement(using: &rng)!.prefix(24).map { $0 } : []
            bytes += (0..<Int.random(in: 0...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            do {
                try decoder.append(bytes)
                while let frame = try decoder.nextFrame() {
                    _ = protocolError { _ = try frame.message() }
                }
            } catch {
                #expect(error.code.isKnown)
            }
        }
    }

    @Test func batchViewSurvivesMutationsOfEveryByte() {
        let frame = Message.batch(Examples.batch).encodeFrame()
        for i in 0..<frame.count {
            for value: UInt8 in [0, 1, 0x7F, 0xFF] where value != frame[i] {
                var bytes = frame
                bytes[i] = value
                // Either rejected, or a frame that re-encodes to exactly these bytes.
                let result: Result<[UInt8], ProtocolError> = bytes.withUnsafeBytes { b in
                    do throws(ProtocolError) {
                        let view = try BatchView(frame: b)
                        return .success(Message.batch(Batch(view)).encodeFrame(requestID: view.header.requestID))
                    } catch { return .failure(error) }
                }
                if case .success(let reencoded) = result {
                    #expect(reencoded == bytes, "byte \(i) set to \(value) accepted but not canonical")
                }
            }
        }
    }
}
