import TokenfeedEngine
import TokenfeedProtocol

/// A connection's protocol state (docs/PROTOCOL.md sections 3 and 4), with no I/O: it takes what the
/// reader decoded, what the session set-up decided and what the writer reports, and answers with
/// the one thing the connection should do. ``Connection`` runs it on its read queue and carries out
/// the actions (sockets, the server's registry and memory, the writer's outbox).
///
/// Every input returns at most one ``Action`` (no array), so a Credit per batch allocates nothing.
///
/// States and their transitions:
/// ```
/// awaitingHandshake ── Hello ──────────► settingUp ── opened ──► session ── Goodbye ──► closed
///        │                                   ├──── rate limited ──► refusalPending ── due ──► closed
///        │                                   └──── refused ───────► closed
///        └── StatsRequest ──► statsOnly ── Goodbye ──► closed
/// any state ── protocol error, end of stream, read error, writer's end, close ──► closed
/// ```
/// Invariant: once `closed`, every input returns `nil` (the first close wins; nothing more is sent).
struct ConnectionStateMachine {
    enum State: Equatable {
        /// Nothing received yet: the first frame must be Hello or StatsRequest.
        case awaitingHandshake
        /// A Hello passed the checks that need no server state; the connection is setting the session up.
        case settingUp(requestID: UInt32)
        /// The session set-up rate refused the Hello: the answer waits (frames are ignored meanwhile).
        case refusalPending
        /// The first frame was a StatsRequest: such a connection never gets a session.
        case statsOnly
        /// The session is open; `creditReceived`: a Credit arrived (the packer may run ahead of the Hello's credits).
        case session(creditReceived: Bool)
        /// The connection is closing; nothing more is done.
        case closed
    }

    /// A control frame the connection encodes and queues for the writer.
    enum ControlFrame: Equatable {
        case error(ErrorMessage, requestID: UInt32)
        case goodbye(Goodbye.Reason)
        /// The server's statistics (with the Prometheus text when asked), answering this request.
        case stats(requestID: UInt32, prometheus: Bool)
    }

    /// What the connection should do next.
    enum Action: Equatable {
        /// Queue a control frame for the writer.
        case send(ControlFrame)
        /// Set up a session for this Hello (rate, memory, rank claim, start step), then report the
        /// outcome with ``sessionSetUp(_:)``.
        case openSession(Hello, requestID: UInt32)
        /// Add `count` to the credit balance (and wake the writer); `allowPackingAhead`: the client's
        /// first Credit, after which the session's packer may fill its ring.
        case grantCredits(UInt32, allowPackingAhead: Bool)
        /// Call ``refusalDue()`` after this many nanoseconds (a Hello refused by the set-up rate is answered late).
        case scheduleRefusal(afterNanoseconds: UInt64)
        /// Stop reading requests until ``outboxDrained()`` (the client does not read its answers).
        case pauseReading
        /// Read requests again.
        case resumeReading
        /// Close the connection, after sending `frame` if any; `warning`: a protocol error to log first
        /// (nil: nothing to log, or logged by whoever decided it).
        case close(reason: String, sending: ControlFrame?, warning: ProtocolError?)
    }

    /// How a session set-up ended.
    enum SetUpOutcome {
        /// The session is open, its Welcome queued; the Hello granted this many credits.
        case opened(initialCredits: UInt32)
        /// The process set up sessions faster than its rate: answer `error` after `retryAfterNanoseconds`.
        case rateLimited(ProtocolError, retryAfterNanoseconds: UInt64)
        /// Refused (rank in use, memory limits, cursor): answer `error` at once.
        case refused(ProtocolError)
    }

    /// How the writer's feed ended.
    enum FeedEnd: Equatable {
        /// The curriculum's last step went out after `lastStep`: Goodbye(end_of_stream).
        case endOfStream(nextStep: UInt64)
        /// A shard failed: this Error (`data_error`), already logged.
        case dataError(ErrorMessage)
        /// Another replica of the rank left: its Error `replica_lost` is already queued.
        case replicaLost
    }

    private(set) var state: State = .awaitingHandshake
    /// Whether reading is paused because the client's answers pile up in the outbox.
    private(set) var readingPaused = false
    private let sequenceLength: UInt32
    private let tokenWidth: TokenfeedProtocol.TokenWidth

    /// - Parameters:
    ///   - sequenceLength: the served stream's sequence length (a Hello's batch size is checked against it).
    ///   - tokenWidth: the served stream's token width.
    init(sequenceLength: UInt32, tokenWidth: TokenfeedProtocol.TokenWidth) {
        self.sequenceLength = sequenceLength
        self.tokenWidth = tokenWidth
    }

    /// Whether a Batch frame of `batchSize` rows (one piece each, the least) fits the protocol's 1 GiB frame limit.
    private func batchFits(_ batchSize: UInt32) -> Bool {
        batchSize <= UInt32(BatchLayout.maxBatchSize)
            && UInt64(BatchLayout(batchSize: Int(batchSize), sequenceLength: Int(sequenceLength), tokenWidth: tokenWidth,
                                  pieceCount: Int(batchSize)).payloadLength) <= FrameLimits.protocolMaximum.batch
    }

    /// Whether the handshake is over (a session opened, or the connection is stats-only).
    var isPastHandshake: Bool {
        switch state {
        case .session, .statsOnly: true
        case .awaitingHandshake, .settingUp, .refusalPending, .closed: false
        }
    }

    // MARK: From the reader

    /// A decoded request.
    mutating func received(_ message: Message, requestID: UInt32) -> Action? {
        switch state {
        case .closed, .refusalPending:
            // Closing: nothing more. A refusal pending: frames are ignored until it is sent.
            return nil
        case .settingUp:
            preconditionFailure("a frame while the session is set up (the set-up is synchronous on the read queue)")
        case .awaitingHandshake, .statsOnly, .session:
            break
        }
        switch message {
        case .hello(let hello):
            guard state == .awaitingHandshake else {
                return fail(ProtocolError(.unexpectedMessage, state == .statsOnly ? "a Hello on a stats-only connection (its first frame was a StatsRequest)"
                                                                                  : "a second Hello on the same connection"), requestID: requestID)
            }
            guard batchFits(hello.batchSize) else {
                return fail(ProtocolError(.malformedFrame, "Hello.batch_size at offset 32: \(hello.batchSize) rows of \(sequenceLength + 1) tokens exceed the 1 GiB Batch frame limit",
                                          detail: "Hello.batch_size"), requestID: requestID)
            }
            state = .settingUp(requestID: requestID)
            return .openSession(hello, requestID: requestID)
        case .credit(let credit):
            guard case .session(let creditReceived) = state else {
                return fail(ProtocolError(.unexpectedMessage, "Credit before Hello"))
            }
            state = .session(creditReceived: true)
            return .grantCredits(credit.count, allowPackingAhead: !creditReceived)
        case .statsRequest(let request):
            if state == .awaitingHandshake { state = .statsOnly }
            return .send(.stats(requestID: requestID, prometheus: request.prometheus))
        case .goodbye:
            guard state != .awaitingHandshake else {
                return fail(ProtocolError(.unexpectedMessage, "Goodbye as the first frame (a connection starts with Hello or StatsRequest)"))
            }
            return close(reason: "client said goodbye")
        case .welcome, .batch, .stats, .error:
            // Refused at the header (FrameLimits.refusedTypes); kept for exhaustiveness.
            return fail(ProtocolError(.unexpectedMessage, "a client does not send \(message.type) frames"))
        }
    }

    /// A frame (or the byte stream) that could not be decoded; `answers`: the frame was a Hello or a
    /// StatsRequest, whose answer (a refusal included) carries its request id.
    mutating func undecodable(_ error: ProtocolError, answers requestID: UInt32? = nil) -> Action? {
        fail(error, requestID: requestID ?? 0)
    }

    /// The client closed its end; `partialFrameBytes` of an unfinished frame were buffered.
    mutating func readEnded(partialFrameBytes: Int) -> Action? {
        close(reason: partialFrameBytes > 0 ? "client closed the connection in the middle of a frame (\(partialFrameBytes) bytes of it received)"
                                            : "client closed the connection")
    }

    /// Reading the socket failed.
    mutating func readFailed(_ error: SystemCallError) -> Action? {
        close(reason: "read failed: \(error)")
    }

    /// The handshake timeout (`seconds`) passed: a connection that sent neither Hello nor StatsRequest gets `limit_exceeded`.
    mutating func handshakeTimedOut(after seconds: Int) -> Action? {
        switch state {
        case .awaitingHandshake, .refusalPending:
            return fail(ProtocolError(.limitExceeded, "no Hello or StatsRequest within the handshake timeout of \(seconds) s", detail: "handshake_timeout"))
        case .settingUp, .statsOnly, .session, .closed:
            return nil
        }
    }

    // MARK: From the session set-up

    /// The outcome of the ``Action/openSession(_:requestID:)`` the machine asked for.
    mutating func sessionSetUp(_ outcome: SetUpOutcome) -> Action? {
        guard case .settingUp(let requestID) = state else { preconditionFailure("a session set-up outcome in state \(state)") }
        switch outcome {
        case .opened(let initialCredits):
            state = .session(creditReceived: false)
            return .grantCredits(initialCredits, allowPackingAhead: false)
        case .rateLimited(let error, let wait):
            state = .refusalPending
            pendingRefusal = (error, requestID)
            return .scheduleRefusal(afterNanoseconds: min(wait, 1_000_000_000))
        case .refused(let error):
            return fail(error, requestID: requestID)
        }
    }

    /// The rate-limited Hello's refusal and its request id, while `refusalPending`.
    private var pendingRefusal: (error: ProtocolError, requestID: UInt32)?

    /// The delay of a rate-limited Hello is over: send its refusal (the server logs these, rate-limited).
    mutating func refusalDue() -> Action? {
        guard state == .refusalPending, let (error, requestID) = pendingRefusal else { return nil }
        pendingRefusal = nil
        state = .closed
        return .close(reason: "protocol error \(error.code.name)", sending: .error(ErrorMessage(error), requestID: requestID), warning: nil)
    }

    /// Adding a Credit made the balance exceed 2^32 - 1.
    mutating func creditBalanceExceeded(_ balance: UInt64) -> Action? {
        fail(ProtocolError(.malformedFrame, "Credit.count at offset 24: the credit balance would be \(balance), above 2^32 - 1", detail: "Credit.count"))
    }

    // MARK: From the writer

    /// The outbox holds more than its limit: stop reading until the writer drains it.
    mutating func outboxOverLimit() -> Action? {
        guard state != .closed, !readingPaused else { return nil }
        readingPaused = true
        return .pauseReading
    }

    /// The writer sent what the outbox held (below its limit again).
    mutating func outboxDrained() -> Action? {
        guard readingPaused, state != .closed else { return nil }
        readingPaused = false
        return .resumeReading
    }

    /// The session's feed ended for this connection's writer.
    mutating func feedEnded(_ end: FeedEnd) -> Action? {
        guard case .session = state else { return nil }
        switch end {
        case .endOfStream(let nextStep):
            return close(reason: "end of stream after step \(nextStep)", sending: .goodbye(.endOfStream))
        case .dataError(let error):
            return close(reason: "data error", sending: .error(error, requestID: 0))
        case .replicaLost:
            return close(reason: "replica lost")
        }
    }

    /// The writer could not send: the client is gone or stopped reading.
    mutating func writeFailed(_ reason: String) -> Action? {
        close(reason: "the client is gone (\(reason))")
    }

    /// The connection began closing for a reason decided elsewhere (daemon shutdown, a replica lost).
    mutating func closedElsewhere() {
        state = .closed
    }

    // MARK: Transitions to closed

    private mutating func close(reason: String, sending frame: ControlFrame? = nil) -> Action? {
        guard state != .closed else { return nil }
        state = .closed
        return .close(reason: reason, sending: frame, warning: nil)
    }

    /// Sends a typed error, then closes (the error is logged as a warning).
    private mutating func fail(_ error: ProtocolError, requestID: UInt32 = 0) -> Action? {
        guard state != .closed else { return nil }
        state = .closed
        return .close(reason: "protocol error \(error.code.name)", sending: .error(ErrorMessage(error), requestID: requestID), warning: error)
    }
}
