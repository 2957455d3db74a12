import Testing
import TokenfeedMixing
import TokenfeedProtocol

@Suite struct RoundTripTests {
    @Test(arguments: Examples.frames.map(\.name))
    func everyExampleRoundTrips(name: String) throws {
        let example = Examples.frames.first { $0.name == name }!
        let bytes = example.message.encodeFrame(requestID: example.requestID)
        let (header, decoded) = try Message.decode(frame: bytes)
        #expect(decoded == example.message)
        #expect(header.payloadLength == UInt64(bytes.count - FrameHeader.size))
        #expect(decoded.encodeFrame(requestID: header.requestID) == bytes)
    }

    /// Property: for random valid messages, decode(encode(m)) == m and the encoding is deterministic.
    @Test(arguments: 0..<8)
    func randomMessagesRoundTrip(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        for _ in 0..<150 {
            let message = RandomMessages.message(&rng)
            let requestID = UInt32.random(in: 0...UInt32.max, using: &rng)
            let bytes = message.encodeFrame(requestID: requestID)
            #expect(message.encodeFrame(requestID: requestID) == bytes)
            let (header, decoded) = try Message.decode(frame: bytes)
            #expect(header.requestID == requestID)
            #expect(decoded == message)
        }
    }

    @Test func typedDecodersRejectOtherTypes() {
        let frame = Examples.credit.encodeFrame()
        let error = protocolError { _ = try Hello(frame: frame) }
        #expect(error?.code == .unexpectedMessage)
    }

    @Test func errorMessageCarriesProtocolErrorAndKeepsUnknownCodes() throws {
        let original = ProtocolError(.dataError, "shard checksum mismatch", detail: "web/00001.tfs frame 12")
        let decoded = try ErrorMessage(frame: ErrorMessage(original).encodeFrame())
        #expect(decoded.protocolError == original)
        let future = try ErrorMessage(frame: ErrorMessage(code: ErrorCode(rawValue: 999), message: "new").encodeFrame())
        #expect(future.code.rawValue == 999)
        #expect(!future.code.isKnown)
        #expect(ErrorCode.allKnown.allSatisfy { $0.isKnown })
    }

    @Test func longErrorTextIsCutAtACharacterBoundary() throws {
        let long = String(repeating: "é", count: 3_000)  // 6,000 bytes
        let decoded = try ErrorMessage(frame: ErrorMessage(code: .internalError, message: long).encodeFrame())
        #expect(decoded.message.utf8.count == 4_096)
        #expect(decoded.message.allSatisfy { $0 == "é" })
    }

    @Test func helloValidationNamesFieldsAndOffsets() {
        var bytes = Hello(rank: 0, worldSize: 2, batchSize: 2, initialCredits: 1).encodeFrame()
        bytes[28] = 0; bytes[29] = 0  // world_size = 0
        let zeroWorld = protocolError { _ = try Hello(frame: bytes) }
        #expect(zeroWorld?.code == .malformedFrame)
        #expect(zeroWorld?.message == "Hello.world_size at offset 28: must be at least 1, got 0")

        let outOfRange = protocolError { _ = try Hello(frame: Hello(rank: 2, worldSize: 2, batchSize: 1, initialCredits: 1).encodeFrame()) }
        #expect(outOfRange?.code == .rankOutOfRange)

        var badCursor = Examples.helloResume.encodeFrame()
        badCursor[24 + 18 + 20] ^= 0xFF  // inside the cursor
        let cursorError = protocolError { _ = try Hello(frame: badCursor) }
        #expect(cursorError?.code == .badCursor)
        #expect(cursorError?.message.contains("offset 42") == true)

        var badUTF8 = Examples.hello.encodeFrame()
        badUTF8[24 + 20] = 0xFF  // first byte of job_id
        let utf8Error = protocolError { _ = try Hello(frame: badUTF8) }
        #expect(utf8Error?.message == "Hello.job_id at offset 44: not valid UTF-8")
    }

    @Test func welcomeRejectsNonContiguousStagesAndBadWidth() {
        var w = Examples.welcome
        w.stages[1].startToken = 57
        let gap = protocolError { _ = try Welcome(frame: w.encodeFrame()) }
        #expect(gap?.code == .malformedFrame)
        #expect(gap?.message.contains("stages[1].start_token") == true)

        var bytes = Examples.welcome.encodeFrame()
        bytes[28] = 3
        let width = protocolError { _ = try Welcome(frame: bytes) }
        #expect(width?.message == "Welcome.token_width at offset 28: must be 2 or 4, got 3")
    }

    @Test func hostileCountsDoNotAllocateOrTrap() {
        // A Welcome claiming 4 billion datasets in a 100-byte payload.
        var bytes = Examples.welcome.encodeFrame()
        let stagesEnd = 24 + 80 + 4 + (8 + 8 + 2 + 6) + (8 + 8 + 2 + 5)
        for i in 0..<4 { bytes[stagesEnd + i] = 0xFF }
        let error = protocolError { _ = try Welcome(frame: bytes) }
        #expect(error?.code == .malformedFrame)
        #expect(error?.message.contains("dataset_count") == true)
    }
}
