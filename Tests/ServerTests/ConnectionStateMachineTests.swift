import Testing
import TokenfeedProtocol
@testable import TokenfeedServer

/// The connection's protocol state machine on its own, without a socket or a server: what each
/// request, set-up outcome, reader and writer event makes the connection do, in every state.
@Suite struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine
    typealias Action = ConnectionStateMachine.Action

    static let hello = Hello(rank: 1, worldSize: 2, batchSize: 4, initialCredits: 3, jobID: "job")

    static func machine() -> Machine { Machine(sequenceLength: 2048, tokenWidth: .u32) }

    /// The states a connection reaches from its inputs (all but `closed` and the transient `settingUp`).
    enum Reached: CaseIterable, CustomStringConvertible {
        case awaitingHandshake, refusalPending, statsOnly, sessionBeforeCredit, sessionAfterCredit

        var description: String { "\(machine().state)" }

        func machine() -> Machine {
            var m = ConnectionStateMachineTests.machine()
            switch self {
            case .awaitingHandshake: break
            case .refusalPending:
                _ = m.received(.hello(hello), requestID: 7)
                _ = m.sessionSetUp(.rateLimited(ProtocolError(.busy, "too fast", detail: "session_rate"), retryAfterNanoseconds: 10))
            case .statsOnly:
                _ = m.received(.statsRequest(StatsRequest()), requestID: 1)
            case .sessionBeforeCredit, .sessionAfterCredit:
                _ = m.received(.hello(hello), requestID: 7)
                _ = m.sessionSetUp(.opened(initialCredits: 3))
                if self == .sessionAfterCredit { _ = m.received(.credit(Credit(count: 1)), requestID: 0) }
            }
            return m
        }
    }

    /// The Error frame a close action sends, if any.
    static func sentError(_ action: Action?) -> (ErrorMessage, requestID: UInt32)? {
        guard case .close(_, .error(let error, let requestID)?, _)? = action else { return nil }
        return (error, requestID)
    }

    // MARK: Handshake

    @Test func helloOpensASessionAndCreditsFollow() {
        var m = Self.machine()
        #expect(m.received(.hello(Self.hello), requestID: 7) == .openSession(Self.hello, requestID: 7))
        #expect(m.state == .settingUp(requestID: 7))
        #expect(m.sessionSetUp(.opened(initialCredits: 3)) == .grantCredits(3, allowPackingAhead: false))
        #expect(m.state == .session(creditReceived: false))
        #expect(m.isPastHandshake)
        // The first Credit lets the packer run ahead; later ones only add credit.
        #expect(m.received(.credit(Credit(count: 5)), requestID: 0) == .grantCredits(5, allowPackingAhead: true))
        #expect(m.received(.credit(Credit(count: 2)), requestID: 0) == .grantCredits(2, allowPackingAhead: false))
        #expect(m.state == .session(creditReceived: true))
        // Stats requests are answered during a session too.
        #expect(m.received(.statsRequest(StatsRequest(prometheus: true)), requestID: 9) == .send(.stats(requestID: 9, prometheus: true)))
    }

    @Test func aHelloWhoseBatchFrameWouldExceedTheFrameLimitIsRefusedBeforeAnySetUp() {
        var m = Self.machine()
        let huge = Hello(rank: 0, worldSize: 1, batchSize: 1 << 20, initialCredits: 1)
        let (error, requestID) = try! #require(Self.sentError(m.received(.hello(huge), requestID: 4)))
        #expect(error.code == .malformedFrame && error.detail == "Hello.batch_size" && requestID == 4)
        #expect(m.state == .closed)
    }

    @Test func aRateLimitedHelloIsAnsweredLateAndFramesMeanwhileAreIgnored() {
        var m = Self.machine()
        _ = m.received(.hello(Self.hello), requestID: 7)
        let busy = ProtocolError(.busy, "too fast", detail: "session_rate")
        // The wait is capped at a second.
        #expect(m.sessionSetUp(.rateLimited(busy, retryAfterNanoseconds: 5_000_000_000)) == .scheduleRefusal(afterNanoseconds: 1_000_000_000))
        #expect(m.received(.credit(Credit(count: 1)), requestID: 0) == nil)
        #expect(m.received(.hello(Self.hello), requestID: 8) == nil)
        #expect(m.received(.goodbye(Goodbye(reason: .done)), requestID: 0) == nil)
        // The refusal carries the Hello's request id and is not logged again (the server logs these, rate-limited).
        #expect(m.refusalDue() == .close(reason: "protocol error busy", sending: .error(ErrorMessage(busy), requestID: 7), warning: nil))
        #expect(m.refusalDue() == nil)
        #expect(m.state == .closed)
    }

    @Test(arguments: [ProtocolError(.rankInUse, "rank 1 of job job is served", detail: "Hello.rank"),
                      ProtocolError(.jobMismatch, "world size 2, the job's is 4", detail: "Hello.world_size"),
                      ProtocolError(.limitExceeded, "session memory", detail: "max_session_bytes"),
                      ProtocolError(.badCursor, "past the end", detail: "Hello.cursor.next_step")])
    func aRefusedSetUpSendsItsErrorWithTheHellosRequestID(_ refusal: ProtocolError) {
        var m = Self.machine()
        _ = m.received(.hello(Self.hello), requestID: 12)
        #expect(m.sessionSetUp(.refused(refusal))
                == .close(reason: "protocol error \(refusal.code.name)", sending: .error(ErrorMessage(refusal), requestID: 12), warning: refusal))
        #expect(m.state == .closed)
        #expect(m.received(.credit(Credit(count: 1)), requestID: 0) == nil)
    }

    /// A frame of another protocol version fails at its header (the real decoder): `unsupported_version`
    /// with request id 0; a Hello whose payload fails carries its request id.
    @Test func undecodableFramesCloseWithTheDecodersError() throws {
        var frame = Self.hello.encodeFrame(requestID: 5)
        frame[4] = 9      // the version field (offset 4, u16)
        let decoder = FrameDecoder()
        let error = try #require(throws: ProtocolError.self) {
            var fed = 0
            while fed < frame.count {
                fed += try decoder.receive { buffer in
                    let n = min(buffer.count, frame.count - fed)
                    frame[fed ..< fed + n].withUnsafeBytes { buffer.copyMemory(from: $0) }
                    return n
                }
            }
            _ = try decoder.nextFrame()
        }
        #expect(error.code == .unsupportedVersion)
        var m = Self.machine()
        let (sent, requestID) = try #require(Self.sentError(m.undecodable(error)))
        #expect(sent.code == .unsupportedVersion && requestID == 0)

        var answering = Self.machine()
        let payloadError = ProtocolError(.malformedFrame, "Hello.world_size at offset 28: must be at least 1, got 0", detail: "Hello.world_size")
        #expect(Self.sentError(answering.undecodable(payloadError, answers: 5))?.requestID == 5)
    }

    // MARK: Out-of-order requests

    @Test func requestsOutOfOrderAreUnexpected() throws {
        func expectUnexpected(_ state: Reached, _ message: Message, requestID: UInt32 = 0, answeredWith expected: UInt32 = 0,
                              _ sentence: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            var m = state.machine()
            let (error, id) = try #require(Self.sentError(m.received(message, requestID: requestID)), sourceLocation: sourceLocation)
            #expect(error.code == .unexpectedMessage && error.message == sentence && id == expected, sourceLocation: sourceLocation)
            #expect(m.state == .closed, sourceLocation: sourceLocation)
        }
        try expectUnexpected(.awaitingHandshake, .credit(Credit(count: 1)), "Credit before Hello")
        try expectUnexpected(.statsOnly, .credit(Credit(count: 1)), "Credit before Hello")
        try expectUnexpected(.awaitingHandshake, .goodbye(Goodbye(reason: .done)),
                             "Goodbye as the first frame (a connection starts with Hello or StatsRequest)")
        try expectUnexpected(.sessionBeforeCredit, .hello(Self.hello), requestID: 3, answeredWith: 3, "a second Hello on the same connection")
        try expectUnexpected(.statsOnly, .hello(Self.hello), requestID: 3, answeredWith: 3,
                             "a Hello on a stats-only connection (its first frame was a StatsRequest)")
        try expectUnexpected(.sessionAfterCredit, .error(ErrorMessage(code: .busy, message: "no")), "a client does not send Error frames")
    }

    // MARK: Stats-only connections

    @Test func aStatsOnlyConnectionIsAnsweredAndMayEndWithGoodbye() {
        var m = Self.machine()
        #expect(m.received(.statsRequest(StatsRequest()), requestID: 1) == .send(.stats(requestID: 1, prometheus: false)))
        #expect(m.state == .statsOnly && m.isPastHandshake)
        #expect(m.received(.statsRequest(StatsRequest(prometheus: true)), requestID: 2) == .send(.stats(requestID: 2, prometheus: true)))
        #expect(m.handshakeTimedOut(after: 10) == nil)
        #expect(m.received(.goodbye(Goodbye(reason: .done)), requestID: 0) == .close(reason: "client said goodbye", sending: nil, warning: nil))
    }

    // MARK: Goodbye, timeouts and errors in every state

    @Test(arguments: [Reached.sessionBeforeCredit, .sessionAfterCredit, .statsOnly])
    func goodbyeClosesWithoutAnAnswer(_ state: Reached) {
        var m = state.machine()
        #expect(m.received(.goodbye(Goodbye(reason: .done)), requestID: 0) == .close(reason: "client said goodbye", sending: nil, warning: nil))
        #expect(m.received(.statsRequest(StatsRequest()), requestID: 3) == nil)
    }

    @Test(arguments: Reached.allCases)
    func theHandshakeTimeoutRefusesOnlyConnectionsWithoutAHandshake(_ state: Reached) throws {
        var m = state.machine()
        let action = m.handshakeTimedOut(after: 10)
        switch state {
        case .awaitingHandshake, .refusalPending:
            let (error, _) = try #require(Self.sentError(action))
            #expect(error.code == .limitExceeded && error.detail == "handshake_timeout"
                    && error.message == "no Hello or StatsRequest within the handshake timeout of 10 s")
        case .statsOnly, .sessionBeforeCredit, .sessionAfterCredit:
            #expect(action == nil)
        }
    }

    /// The reader's end of stream and errors, undecodable frames and the writer's failure close the
    /// connection from every state; once closed, nothing does anything more.
    @Test(arguments: Reached.allCases)
    func endsAndErrorsCloseFromEveryState(_ state: Reached) {
        let corrupt = ProtocolError(.badMagic, "frame header at offset 0: magic is 00 00 00 00, expected 54 4b 46 44 (\"TKFD\")")
        let inputs: [(String, (inout Machine) -> Action?, Action)] = [
            ("end of stream", { $0.readEnded(partialFrameBytes: 0) }, .close(reason: "client closed the connection", sending: nil, warning: nil)),
            ("end in a frame", { $0.readEnded(partialFrameBytes: 10) },
             .close(reason: "client closed the connection in the middle of a frame (10 bytes of it received)", sending: nil, warning: nil)),
            ("read error", { $0.readFailed(SystemCallError("recv", code: 104)) },
             .close(reason: "read failed: \(SystemCallError("recv", code: 104))", sending: nil, warning: nil)),
            ("undecodable", { $0.undecodable(corrupt) },
             .close(reason: "protocol error bad_magic", sending: .error(ErrorMessage(corrupt), requestID: 0), warning: corrupt)),
            ("write failed", { $0.writeFailed("sendmsg: Broken pipe") },
             .close(reason: "the client is gone (sendmsg: Broken pipe)", sending: nil, warning: nil)),
        ]
        for (name, input, expected) in inputs {
            var m = state.machine()
            #expect(input(&m) == expected, "\(name) in \(state)")
            #expect(m.state == .closed)
            // Closed: the first close wins, nothing more is sent or granted.
            for (_, again, _) in inputs { #expect(again(&m) == nil, "\(name), then more in \(state)") }
            #expect(m.received(.hello(Self.hello), requestID: 1) == nil)
            #expect(m.received(.credit(Credit(count: 1)), requestID: 0) == nil)
            #expect(m.received(.statsRequest(StatsRequest()), requestID: 1) == nil)
            #expect(m.received(.goodbye(Goodbye(reason: .done)), requestID: 0) == nil)
            #expect(m.handshakeTimedOut(after: 1) == nil)
            #expect(m.feedEnded(.endOfStream(nextStep: 3)) == nil)
            #expect(m.outboxOverLimit() == nil && m.outboxDrained() == nil)
            #expect(m.creditBalanceExceeded(1 << 33) == nil)
            #expect(m.refusalDue() == nil)
        }
    }

    @Test(arguments: Reached.allCases)
    func closingElsewhereSilencesTheMachine(_ state: Reached) {
        var m = state.machine()
        m.closedElsewhere()
        #expect(m.received(.goodbye(Goodbye(reason: .done)), requestID: 0) == nil)
        #expect(m.readEnded(partialFrameBytes: 0) == nil)
        #expect(m.writeFailed("gone") == nil)
    }

    // MARK: Credits and the writer's events

    @Test func aCreditBalanceAbove32BitsIsMalformed() throws {
        var m = Reached.sessionAfterCredit.machine()
        let (error, _) = try #require(Self.sentError(m.creditBalanceExceeded(UInt64(UInt32.max) + 1)))
        #expect(error.code == .malformedFrame && error.detail == "Credit.count")
        #expect(error.message == "Credit.count at offset 24: the credit balance would be 4294967296, above 2^32 - 1")
    }

    @Test func readingPausesWhileTheOutboxIsOverItsLimit() {
        var m = Reached.statsOnly.machine()
        #expect(m.outboxDrained() == nil)
        #expect(m.outboxOverLimit() == .pauseReading)
        #expect(m.readingPaused)
        #expect(m.outboxOverLimit() == nil)
        #expect(m.outboxDrained() == .resumeReading)
        #expect(m.outboxDrained() == nil)
    }

    @Test func theFeedsEndSendsGoodbyeOrTheDataError() {
        var done = Reached.sessionAfterCredit.machine()
        #expect(done.feedEnded(.endOfStream(nextStep: 40))
                == .close(reason: "end of stream after step 40", sending: .goodbye(.endOfStream), warning: nil))
        var failed = Reached.sessionBeforeCredit.machine()
        let dataError = ErrorMessage(code: .dataError, message: "checksum", detail: "a.tkfd frame 3")
        #expect(failed.feedEnded(.dataError(dataError)) == .close(reason: "data error", sending: .error(dataError, requestID: 0), warning: nil))
        var lost = Reached.sessionAfterCredit.machine()
        #expect(lost.feedEnded(.replicaLost) == .close(reason: "replica lost", sending: nil, warning: nil))
        // Only a session has a feed.
        var stats = Reached.statsOnly.machine()
        #expect(stats.feedEnded(.endOfStream(nextStep: 1)) == nil)
    }
}
