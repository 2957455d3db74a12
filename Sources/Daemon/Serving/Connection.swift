#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import Logging
import Synchronization
import TokenfeedEngine
import TokenfeedShards
import TokenfeedProtocol

/// One client connection, put together from three parts:
/// - a ``ConnectionReader`` (a `DispatchSourceRead` on the connection's serial `queue` decoding frames),
/// - a ``ConnectionStateMachine`` (the protocol, no I/O) fed on `queue` with what the reader decoded
///   and what the writer reports; this class carries out its actions (the session set-up against the
///   server's registry and memory, credits, control frames, pausing the reader, closing),
/// - a ``ConnectionWriter`` (its own thread, the only code writing to the socket, through a
///   ``SocketSender`` that waits for a full socket on a `DispatchSourceWrite`).
/// Each session has its own ``RankFeed``, so a slow or vanished client only ever stalls its own writer.
///
/// Queues: the machine, the reader and the session set-up are confined to `queue` (asserted with
/// `dispatchPrecondition` in debug builds); ``send(_:requestID:)``, ``close(reason:)`` and
/// ``endReplicaLost(_:)`` may be called from any queue.
///
/// Teardown: ``close(reason:)`` marks the connection closing (idempotent), stops the writer and, on
/// `queue`, the feed and the reader; the writer flushes what the outbox holds (an Error or Goodbye)
/// and stops watching the socket. When both the reader and the writer are done with the descriptor
/// it is closed and the rank released.
final class Connection: @unchecked Sendable {
    let id: UInt64
    /// The peer process (`SO_PEERCRED`), whose session set-ups are rate-limited.
    let peerPID: Int32
    let fd: Int32
    /// The connection's logger (its id in the metadata); a session's log lines use ``Session/logger``,
    /// which adds the rank.
    let logger: Logger
    /// Sends control frames and batches; holds the credit balance and the session's statistics.
    let writer: ConnectionWriter
    private let server: Server
    private let queue: DispatchQueue

    /// On `queue` only.
    private var machine: ConnectionStateMachine
    private var reader: ConnectionReader?
    private var readSession: Session?

    private let closing = Atomic<Bool>(false)
    private let sidesFinished = Atomic<Int>(0)
    /// Bytes of session memory reserved from the server's total (released when the connection ends).
    private let reservedBytes = Atomic<Int>(0)
    /// The session's rank tally, for ending it when the connection closes.
    private let sessionTally = LockedValue<RankTally?>(nil)
    /// The session's identity for Stats and the registry, set once at the handshake.
    let sessionInfo = LockedValue<Session?>(nil)

    /// - Parameter logger: the server's logger; the connection's id is added to its metadata here,
    ///   before the server registers the connection.
    init(id: UInt64, fd: Int32, server: Server, logger: Logger, peerPID: Int32) {
        self.id = id
        self.fd = fd
        self.peerPID = peerPID
        self.server = server
        var logger = logger
        logger[metadataKey: "connection"] = "\(id)"
        self.logger = logger
        queue = DispatchQueue(label: "tokenfeed.connection\(id).read")
        let sender = SocketSender(fd: fd, queue: queue)
        writer = ConnectionWriter(connectionID: id, sender: sender, server: server)
        machine = ConnectionStateMachine(sequenceLength: server.stream.sequenceLength, tokenWidth: server.stream.tokenWidth)
    }

    /// Starts the writer's thread, reading, and the handshake timeout.
    func start() {
        writer.start(events: self)
        queue.async { [self] in
            dispatchPrecondition(condition: .onQueue(queue))
            let reader = ConnectionReader(fd: fd, queue: queue, deliver: { [self] in handle($0) }, cancelled: { [self] in sideFinished() })
            self.reader = reader
            reader.start()
        }
        let timeout = server.options.limits.handshakeTimeoutSeconds
        queue.asyncAfter(deadline: .now() + .seconds(timeout)) { [weak self] in
            guard let self, !isClosing else { return }
            dispatchPrecondition(condition: .onQueue(queue))
            if let action = machine.handshakeTimedOut(after: timeout) { perform(action) }
        }
    }

    /// Whether ``close(reason:)`` was called.
    var isClosing: Bool { closing.load(ordering: .acquiring) }

    /// Whether the connection is closing or its peer has hung up (a pending end of stream the read
    /// side has not processed yet). The descriptor is open while `isClosing` is false.
    var isDefunct: Bool {
        if isClosing { return true }
        var probe = pollfd(fd: fd, events: Int16(POLLIN) | Self.pollReadHangUp, revents: 0)
        guard poll(&probe, 1, 0) == 1 else { return false }
        return probe.revents & (Self.pollReadHangUp | Int16(POLLHUP) | Int16(POLLERR)) != 0
    }

    /// Linux's POLLRDHUP (peer closed its writing half).
    private static let pollReadHangUp: Int16 = 0x2000

    // MARK: On `queue`

    /// Feeds one reader event to the machine and carries out its answer.
    /// - Returns: whether to keep reading (false when closing or when the outbox is over its limit).
    private func handle(_ event: ConnectionReader.Event) -> Bool {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !isClosing else { return false }
        let action: ConnectionStateMachine.Action?
        switch event {
        case .message(let message, let requestID): action = machine.received(message, requestID: requestID)
        case .undecodable(let error, let answers): action = machine.undecodable(error, answers: answers)
        case .ended(let partialFrameBytes): action = machine.readEnded(partialFrameBytes: partialFrameBytes)
        case .failed(let error): action = machine.readFailed(error)
        }
        if let action { perform(action) }
        if isClosing { return false }
        if writer.queuedControlBytes > server.options.limits.outboxBytes, let pause = machine.outboxOverLimit() {
            // The client does not read its answers: stop reading its requests until the writer drains them.
            perform(pause)
            return false
        }
        return true
    }

    /// Carries out one of the machine's actions.
    private func perform(_ action: ConnectionStateMachine.Action) {
        dispatchPrecondition(condition: .onQueue(queue))
        switch action {
        case .send(let frame):
            send(frame)
        case .openSession(let hello, let requestID):
            if let next = machine.sessionSetUp(openSession(hello, requestID: requestID)) { perform(next) }
        case .grantCredits(let count, let allowPackingAhead):
            // The client reads: its packer may now fill the ring (it packed only the Hello's credits).
            if allowPackingAhead { readSession?.feed.allowPackingAhead() }
            let balance = writer.grant(count)
            if balance > UInt64(UInt32.max), let next = machine.creditBalanceExceeded(balance) { perform(next) }
        case .scheduleRefusal(let nanoseconds):
            // Answered when the process could set up its next session (at most a second from now), so a
            // client that retries at once is paced to the rate rather than spinning through refusals.
            queue.asyncAfter(deadline: .now() + .nanoseconds(Int(nanoseconds))) { [self] in
                dispatchPrecondition(condition: .onQueue(queue))
                guard !isClosing, let action = machine.refusalDue() else { return }
                perform(action)
            }
        case .pauseReading:
            reader?.pause()
        case .resumeReading:
            reader?.resume()
        case .close(let reason, let frame, let warning):
            if let warning {
                (readSession?.logger ?? logger).warning("protocol error, closing", metadata: [
                    "code": "\(warning.code.name)", "error": "\(warning.message)",
                ])
            }
            if let frame, !isClosing { send(frame) }
            close(reason: reason)
        }
    }

    /// Sets up a session for an accepted Hello, in the order of docs/PROTOCOL.md section 4: the
    /// process's set-up rate (nothing is allocated before it), memory, the rank (or replica) claim and
    /// the cursor; an opened session gets its feed, and its Welcome is queued.
    private func openSession(_ hello: Hello, requestID: UInt32) -> ConnectionStateMachine.SetUpOutcome {
        dispatchPrecondition(condition: .onQueue(queue))
        let served = server.stream
        if let (error, wait) = server.refuseSessionSetup(pid: peerPID) { return .rateLimited(error, retryAfterNanoseconds: wait) }
        // The frames come from the daemon's shared cache, reserved once at start: a session takes its ring.
        let needed = RankFeed.ringBytes(stream: served.stream, batchSize: Int(hello.batchSize), ringSlots: server.options.ringSlots)
        do { try server.reserveSessionMemory(needed, batchSize: hello.batchSize) } catch { return .refused(error) }
        reservedBytes.store(needed, ordering: .releasing)
        let slice = RankSlice(rank: Int(hello.rank), worldSize: Int(hello.worldSize), batchSize: Int(hello.batchSize))
        let startStep: UInt64
        let feed: RankFeed
        var created = true
        if hello.replicas > 1 {
            // Replicas of one data-parallel rank: the first creates the rank's feed, the others join it
            // (the start step is compared, so it is computed before the claim).
            do {
                startStep = try SessionStart.step(for: hello, served: served)
                (feed, created) = try server.registry.claimReplica(hello, startStep: startStep, owner: self) {
                    RankFeed(stream: served.stream, slice: slice, startStep: startStep, ringSlots: server.options.ringSlots,
                             frameCache: server.frameCache, replicas: Int(hello.replicas), packAhead: UInt64(hello.initialCredits))
                }
            } catch {
                releaseMemory()
                return .refused(error)
            }
        } else {
            do { try server.registry.claim(hello, owner: self) } catch {
                releaseMemory()
                return .refused(error)
            }
            do { startStep = try SessionStart.step(for: hello, served: served) } catch {
                server.registry.releaseClaim(rank: hello.rank, jobID: hello.jobID, owner: self)
                releaseMemory()
                return .refused(error)
            }
            feed = RankFeed(stream: served.stream, slice: slice, startStep: startStep,
                            ringSlots: server.options.ringSlots, frameCache: server.frameCache, packAhead: UInt64(hello.initialCredits))
        }
        let session = Session(hello: hello, startStep: startStep, feed: feed, connectionLogger: logger)
        readSession = session
        sessionInfo.withLock { $0 = session }
        if created { feed.start() } else {
            // A replica joining its rank's feed: the feed was bounded by the first replica's credits; this
            // one's may be more, and no replica should wait for another's first Credit.
            feed.allowPackingAhead()
        }
        let tally = server.counters.tally(jobID: hello.jobID, rank: hello.rank,
                                          startSequence: startStep &* UInt64(hello.worldSize) &* UInt64(hello.batchSize))
        sessionTally.withLock { $0 = tally }
        var welcome: [UInt8] = []
        served.welcome(startCursor: served.cursor(nextStep: startStep, worldSize: hello.worldSize, batchSize: hello.batchSize))
            .encodeFrame(into: &welcome, requestID: requestID)
        writer.open(session, welcome: welcome, tally: tally)
        session.logger.info("session opened", metadata: [
            "world_size": "\(hello.worldSize)", "batch_size": "\(hello.batchSize)", "job": "\(hello.jobID)",
            "start_step": "\(startStep)", "credits": "\(hello.initialCredits)",
            "resumed": "\(hello.cursor != nil)",
        ])
        return .opened(initialCredits: hello.initialCredits)
    }

    /// Encodes and queues one of the machine's control frames.
    private func send(_ frame: ConnectionStateMachine.ControlFrame) {
        dispatchPrecondition(condition: .onQueue(queue))
        switch frame {
        case .error(let error, let requestID):
            send(error, requestID: requestID)
        case .goodbye(let reason):
            send(Goodbye(reason: reason), requestID: 0)
        case .stats(let requestID, let prometheus):
            var stats = server.statsSnapshot()
            if prometheus { stats.prometheusText = server.metricsText() }
            send(stats, requestID: requestID)
        }
    }

    // MARK: Any queue

    /// Queues a control frame for the writer.
    func send(_ message: some WireMessage, requestID: UInt32) {
        if let error = message as? ErrorMessage { server.counters.recordError(error.code) }
        var bytes: [UInt8] = []
        message.encodeFrame(into: &bytes, requestID: requestID)
        writer.enqueue(bytes)
    }

    /// Ends this replica's session because another replica of its rank left early: Error
    /// `replica_lost` (and no Goodbye), then close.
    func endReplicaLost(_ message: String) {
        let session = sessionInfo.withLock { $0 }
        session?.replicaLost.store(true, ordering: .sequentiallyConsistent)
        (session?.logger ?? logger).warning("another replica of the rank left, closing", metadata: ["error": "\(LogEscaping.escaped(message))"])
        send(ErrorMessage(code: .replicaLost, message: message, detail: "Hello.replica_index"), requestID: 0)
        close(reason: "replica lost")
    }

    /// Starts the teardown (idempotent): the writer flushes queued frames and stops, the reader is
    /// cancelled, the feed stopped; the descriptor closes when both sides have finished.
    func close(reason: String) {
        guard !closing.exchange(true, ordering: .sequentiallyConsistent) else { return }
        (sessionInfo.withLock { $0 }?.logger ?? logger).info("closing", metadata: ["reason": "\(reason)"])
        writer.stop()
        queue.async { [self] in
            dispatchPrecondition(condition: .onQueue(queue))
            machine.closedElsewhere()
            // A feed shared by replicas is stopped by the registry, after the other replicas are told.
            if let session = readSession, session.replicas <= 1 { session.feed.stop() }
            reader?.cancel()
        }
    }

    /// Called once by the reader's cancel handler and once by the write source's (both on `queue`),
    /// when each is done with the socket.
    private func sideFinished() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard sidesFinished.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue == 2 else { return }
        // Both the read source and the writer are done with the descriptor.
        let session = sessionInfo.withLock { $0 }
        var cursorStep = writer.nextStep.load(ordering: .relaxed)
        if let session { cursorStep = server.registry.release(session: session, owner: self, nextStep: cursorStep) }
        if let session, session.replicas <= 1 { session.feed.stop() }
        sessionTally.withLock { $0 }?.sessionEnded()
        releaseMemory()
        _ = Glibc.close(fd)
        server.connectionClosed(self, session: session, nextStep: cursorStep)
        logger.debug("closed")
    }

    /// Returns this connection's session memory to the server's total (once).
    private func releaseMemory() {
        let bytes = reservedBytes.exchange(0, ordering: .acquiringAndReleasing)
        if bytes > 0 { server.releaseSessionMemory(bytes) }
    }
}

extension Connection: ConnectionWriterEvents {
    func writerDrainedOutbox() {
        queue.async { [self] in
            dispatchPrecondition(condition: .onQueue(queue))
            guard !isClosing, writer.queuedControlBytes <= server.options.limits.outboxBytes,
                  let action = machine.outboxDrained() else { return }
            perform(action)
        }
    }

    func writerFeedEnded(_ end: ConnectionStateMachine.FeedEnd) {
        queue.async { [self] in
            dispatchPrecondition(condition: .onQueue(queue))
            guard !isClosing, let action = machine.feedEnded(end) else { return }
            perform(action)
        }
    }

    func writerFailed(_ reason: String) {
        queue.async { [self] in
            dispatchPrecondition(condition: .onQueue(queue))
            guard !isClosing, let action = machine.writeFailed(reason) else { return }
            perform(action)
        }
    }

    func writerFinished() { sideFinished() }
}
