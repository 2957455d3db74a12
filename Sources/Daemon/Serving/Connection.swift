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

/// One client connection: a read side (a `DispatchSourceRead` on the connection's serial queue that
/// decodes frames and runs the handshake, credits and stats requests) and a writer (its own serial
/// queue that sends control frames and batches). Each session has its own ``RankFeed``, so a slow
/// or vanished client only ever stalls its own writer.
///
/// The writer is the only code that writes to the socket; the read side hands it frames and the
/// session through the `outbox` (a mutex taken only for control traffic, never per batch). Credits
/// are an atomic balance. The writer parks when it has nothing to do and is woken by
/// ``wakeWriter()`` (an atomic flag guards against double scheduling and lost wake-ups).
///
/// Teardown: ``close(reason:)`` marks the connection closing (idempotent), stops the feed and
/// cancels the read source; the writer flushes what the outbox holds (an Error or Goodbye) and
/// stops. When both sides have finished the descriptor is closed and the rank released.
final class Connection: @unchecked Sendable {
    /// Batches and control frames sent by the writer; the read side only enqueues into it.
    struct Outbox {
        var frames: [[UInt8]] = []
        var session: Session?
        /// What the daemon served the session's rank (handed to the writer with the session).
        var tally: RankTally?
    }

    let id: UInt64
    /// The peer process (`SO_PEERCRED`), whose session set-ups are rate-limited.
    let peerPID: Int32
    let fd: Int32
    private let server: Server
    /// The connection's logger; the handshake adds the rank while `close(reason:)` may log from any
    /// queue, so it is read and changed only under this lock.
    private let loggerBox: LockedValue<Logger>
    private var logger: Logger { loggerBox.withLock { $0 } }
    private let queue: DispatchQueue
    private let writerQueue: DispatchQueue
    /// Read side only (on `queue`).
    private var readSource: (any DispatchSourceRead)?
    private let decoder: FrameDecoder
    private var readSession: Session?
    /// Whether the first frame was a StatsRequest (such a connection never gets a session).
    private var statsOnly = false
    /// Whether the read source is suspended because the client's answers pile up in the outbox.
    private var readPaused = false
    /// Whether a Credit arrived, which lets the session's packer run ahead of the Hello's credits.
    private var packingAheadAllowed = false
    /// Whether the Hello was refused by the session set-up rate and the answer waits (frames are ignored).
    private var helloRefusalPending = false
    /// Bytes of control frames queued in the outbox (bounded by `limits.outboxBytes`).
    private let outboxBytes = Atomic<Int>(0)
    /// Bytes of session memory reserved from the server's total (released when the connection ends).
    private let reservedBytes = Atomic<Int>(0)

    /// Writer only (on `writerQueue`).
    private var writer: BatchWriter?
    /// The session's rank tally, the client wait not yet recorded (a wait `.waited` interrupted) and
    /// when the writer began waiting for credit with a batch to send (0: not waiting); writer only.
    private var writerTally: RankTally?
    private var pendingClientWait: UInt64 = 0
    private var creditWaitStart: UInt64 = 0
    /// The session's rank tally, for ending it when the connection closes.
    private let sessionTally = LockedValue<RankTally?>(nil)

    private let outbox = LockedValue(Outbox())
    private let outboxPending = Atomic<Bool>(false)
    private let writerScheduled = Atomic<Bool>(false)
    /// Signalled by ``wakeWriter()``; the writer's own thread waits on it between rounds.
    private let writerWake = DispatchSemaphore(value: 0)
    /// Where the writer parks waiting for a packed batch (the session ring's consumer side, set at the
    /// handshake): ``wakeWriter()`` notifies it too, so that a control frame or the teardown interrupts that wait.
    private let batchWait = AtomicLazyReference<EventCount>()
    private let closing = Atomic<Bool>(false)
    private let closingSince = Atomic<UInt64>(0)
    private let sidesFinished = Atomic<Int>(0)

    /// Credit balance: batches the client allows the writer to send.
    let credits = Atomic<UInt64>(0)
    /// Statistics for Stats (relaxed atomics).
    let batchesSent = Atomic<UInt64>(0)
    let nextStep = Atomic<UInt64>(0)
    let waitNanosecondsTotal = Atomic<UInt64>(0)
    let waitNanosecondsMax = Atomic<UInt64>(0)
    /// The session's identity for Stats, set once at the handshake.
    let sessionInfo = LockedValue<Session?>(nil)

    init(id: UInt64, fd: Int32, server: Server, logger: Logger, peerPID: Int32) {
        self.id = id
        self.fd = fd
        self.peerPID = peerPID
        self.server = server
        var logger = logger
        logger[metadataKey: "connection"] = "\(id)"
        self.loggerBox = LockedValue(logger)
        self.queue = DispatchQueue(label: "tokenfeed.connection\(id).read")
        self.writerQueue = DispatchQueue(label: "tokenfeed.connection\(id).write")
        var limits = FrameLimits()
        // A client never sends Welcome, Batch, Stats or Error: refuse them at the header (docs/PROTOCOL.md section 3).
        limits.refusedTypes = [.welcome, .batch, .stats, .error]
        self.decoder = FrameDecoder(limits: limits, initialCapacity: 4096)
    }

    /// Starts reading, and the writer on a thread of its own (it waits for the packer and for a full
    /// socket; that must not hold a Dispatch pool thread), confined to `writerQueue`.
    func start() {
        DedicatedThread.run { [self] in
            // One `sync` for the thread's life (nothing else runs on `writerQueue`): a `sync` per wake-up
            // allocated three times (a block copy and two boxes) per batch when the writer waits for
            // credit after each one (AllocationProbe, `lockstep`).
            writerQueue.sync {
                while true {
                    writerWake.wait()
                    if writeLoop() { return }
                }
            }
        }
        queue.async { [self] in
            dispatchPrecondition(condition: .onQueue(queue))
            let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
            source.setEventHandler { [self] in readable() }
            source.setCancelHandler { [self] in sideFinished() }
            readSource = source
            source.resume()
        }
        let timeout = server.options.limits.handshakeTimeoutSeconds
        queue.asyncAfter(deadline: .now() + .seconds(timeout)) { [weak self] in
            guard let self, !isClosing, readSession == nil, !statsOnly else { return }
            fail(ProtocolError(.limitExceeded, "no Hello or StatsRequest within the handshake timeout of \(timeout) s", detail: "handshake_timeout"))
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

    // MARK: Read side

    private func readable() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !isClosing else { return }
        while true {
            var readErrno: Int32 = 0
            let n: Int
            do {
                n = try decoder.receive { buffer in
                    let got = recv(fd, buffer.baseAddress, buffer.count, 0)
                    if got < 0 { readErrno = errno }
                    return got
                }
            } catch {
                fail(error)
                return
            }
            if n == 0 {
                let partial = decoder.bufferedBytes
                close(reason: partial > 0 ? "client closed the connection in the middle of a frame (\(partial) bytes of it received)"
                                          : "client closed the connection")
                return
            }
            if n < 0 {
                if readErrno == EAGAIN || readErrno == EWOULDBLOCK { return }
                if readErrno == EINTR { continue }
                close(reason: "read failed: \(SystemCallError("recv", code: readErrno))")
                return
            }
            do {
                while let frame = try decoder.nextFrame() {
                    let message: Message
                    do { message = try frame.message() } catch {
                        // An answer to a Hello or StatsRequest carries its request id, refusals included.
                        let answers = frame.header.type == .hello || frame.header.type == .statsRequest
                        fail(error, requestID: answers ? frame.header.requestID : 0)
                        return
                    }
                    handle(message, requestID: frame.header.requestID)
                    if isClosing { return }
                    if outboxBytes.load(ordering: .acquiring) > server.options.limits.outboxBytes {
                        // The client does not read its answers: stop reading its requests until the writer drains them.
                        readPaused = true
                        readSource?.suspend()
                        return
                    }
                }
            } catch {
                fail(error)
                return
            }
        }
    }

    private func handle(_ message: Message, requestID: UInt32) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !helloRefusalPending else { return }
        switch message {
        case .hello(let hello):
            guard readSession == nil, !statsOnly else {
                fail(ProtocolError(.unexpectedMessage, statsOnly ? "a Hello on a stats-only connection (its first frame was a StatsRequest)"
                                                                 : "a second Hello on the same connection"), requestID: requestID)
                return
            }
            handshake(hello, requestID: requestID)
        case .credit(let credit):
            guard readSession != nil else {
                fail(ProtocolError(.unexpectedMessage, "Credit before Hello"))
                return
            }
            if !packingAheadAllowed {
                // The client reads: its packer may now fill the ring (it packed only the Hello's credits).
                packingAheadAllowed = true
                readSession?.feed.allowPackingAhead()
            }
            let balance = credits.wrappingAdd(UInt64(credit.count), ordering: .sequentiallyConsistent).newValue
            guard balance <= UInt64(UInt32.max) else {
                fail(ProtocolError(.malformedFrame, "Credit.count at offset 24: the credit balance would be \(balance), above 2^32 - 1",
                                   detail: "Credit.count"))
                return
            }
            wakeWriter()
        case .statsRequest(let request):
            if readSession == nil { statsOnly = true }
            var stats = server.statsSnapshot()
            if request.prometheus { stats.prometheusText = server.metricsText() }
            send(stats, requestID: requestID)
        case .goodbye:
            guard readSession != nil || statsOnly else {
                fail(ProtocolError(.unexpectedMessage, "Goodbye as the first frame (a connection starts with Hello or StatsRequest)"))
                return
            }
            close(reason: "client said goodbye")
        case .welcome, .batch, .stats, .error:
            // Refused at the header (FrameLimits.refusedTypes); kept for exhaustiveness.
            fail(ProtocolError(.unexpectedMessage, "a client does not send \(message.type) frames"))
        }
    }

    /// Accepts or refuses a Hello, in the order of docs/PROTOCOL.md section 4: job shape, rank in
    /// use, then the cursor; an accepted session gets its feed, the Welcome and its initial credits.
    private func handshake(_ hello: Hello, requestID: UInt32) {
        dispatchPrecondition(condition: .onQueue(queue))
        let served = server.stream
        guard hello.batchSize <= UInt32(BatchLayout.maxBatchSize),
              UInt64(BatchLayout(batchSize: Int(hello.batchSize), sequenceLength: Int(served.sequenceLength), tokenWidth: served.tokenWidth,
                                 pieceCount: Int(hello.batchSize)).payloadLength) <= FrameLimits.protocolMaximum.batch
        else {
            fail(ProtocolError(.malformedFrame, "Hello.batch_size at offset 32: \(hello.batchSize) rows of \(served.sequenceLength + 1) tokens exceed the 1 GiB Batch frame limit",
                               detail: "Hello.batch_size"), requestID: requestID)
            return
        }
        // Then the process's set-up rate (nothing is allocated before it), then memory.
        if let (error, wait) = server.refuseSessionSetup(pid: peerPID) {
            // Answered when the process could set up its next session (at most a second from now), so a
            // client that retries at once is paced to the rate rather than spinning through refusals.
            // Frames meanwhile are ignored; the server logs these refusals at most once per second.
            helloRefusalPending = true
            queue.asyncAfter(deadline: .now() + .nanoseconds(Int(min(wait, 1_000_000_000)))) { [self] in
                guard !isClosing else { return }
                fail(error, requestID: requestID, logged: false)
            }
            return
        }
        // The frames come from the daemon's shared cache, reserved once at start: a session takes its ring.
        let needed = RankFeed.ringBytes(stream: served.stream, batchSize: Int(hello.batchSize), ringSlots: server.options.ringSlots)
        do { try server.reserveSessionMemory(needed, batchSize: hello.batchSize) } catch {
            fail(error, requestID: requestID)
            return
        }
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
                fail(error, requestID: requestID)
                return
            }
        } else {
            do { try server.registry.claim(hello, owner: self) } catch {
                releaseMemory()
                fail(error, requestID: requestID)
                return
            }
            do { startStep = try SessionStart.step(for: hello, served: served) } catch {
                server.registry.releaseClaim(rank: hello.rank, jobID: hello.jobID, owner: self)
                releaseMemory()
                fail(error, requestID: requestID)
                return
            }
            feed = RankFeed(stream: served.stream, slice: slice, startStep: startStep,
                            ringSlots: server.options.ringSlots, frameCache: server.frameCache, packAhead: UInt64(hello.initialCredits))
        }
        loggerBox.withLock {
            $0[metadataKey: "rank"] = "\(hello.rank)"
            if hello.replicas > 1 { $0[metadataKey: "replica"] = "\(hello.replicaIndex)/\(hello.replicas)" }
        }
        let session = Session(hello: hello, startStep: startStep, feed: feed)
        readSession = session
        _ = batchWait.storeIfNil(session.ring.consumerEvents)
        nextStep.store(startStep, ordering: .relaxed)
        sessionInfo.withLock { $0 = session }
        if created { feed.start() } else {
            // A replica joining its rank's feed: the feed was bounded by the first replica's credits; this
            // one's may be more, and no replica should wait for another's first Credit.
            feed.allowPackingAhead()
        }
        let tally = server.counters.tally(jobID: hello.jobID, rank: hello.rank,
                                          startSequence: startStep &* UInt64(hello.worldSize) &* UInt64(hello.batchSize))
        sessionTally.withLock { $0 = tally }
        let start = served.cursor(nextStep: startStep, worldSize: hello.worldSize, batchSize: hello.batchSize)
        var welcome: [UInt8] = []
        served.welcome(startCursor: start).encodeFrame(into: &welcome, requestID: requestID)
        outbox.withLock {
            $0.frames.append(welcome)
            $0.session = session
            $0.tally = tally
        }
        outboxPending.store(true, ordering: .sequentiallyConsistent)
        credits.wrappingAdd(UInt64(hello.initialCredits), ordering: .sequentiallyConsistent)
        logger.info("session opened", metadata: [
            "world_size": "\(hello.worldSize)", "batch_size": "\(hello.batchSize)", "job": "\(hello.jobID)",
            "start_step": "\(startStep)", "credits": "\(hello.initialCredits)",
            "resumed": "\(hello.cursor != nil)",
        ])
        wakeWriter()
    }

    /// Ends this replica's session because another replica of its rank left early: Error
    /// `replica_lost` (and no Goodbye), then close.
    func endReplicaLost(_ message: String) {
        sessionInfo.withLock { $0 }?.replicaLost.store(true, ordering: .sequentiallyConsistent)
        logger.warning("another replica of the rank left, closing", metadata: ["error": "\(LogEscaping.escaped(message))"])
        send(ErrorMessage(code: .replicaLost, message: message, detail: "Hello.replica_index"), requestID: 0)
        close(reason: "replica lost")
    }

    /// Sends a typed error, then closes; logs a warning unless `logged` is false (the caller logs it, rate-limited).
    private func fail(_ error: ProtocolError, requestID: UInt32 = 0, logged: Bool = true) {
        if logged { logger.warning("protocol error, closing", metadata: ["code": "\(error.code.name)", "error": "\(error.message)"]) }
        send(ErrorMessage(error), requestID: requestID)
        close(reason: "protocol error \(error.code.name)")
    }

    // MARK: Outbox and teardown (any queue)

    /// Queues a control frame for the writer.
    func send(_ message: some WireMessage, requestID: UInt32) {
        if let error = message as? ErrorMessage { server.counters.recordError(error.code) }
        var bytes: [UInt8] = []
        message.encodeFrame(into: &bytes, requestID: requestID)
        outboxBytes.wrappingAdd(bytes.count, ordering: .releasing)
        outbox.withLock { $0.frames.append(bytes) }
        outboxPending.store(true, ordering: .sequentiallyConsistent)
        wakeWriter()
    }

    /// Starts the teardown (idempotent): the writer flushes queued frames and stops, the read source
    /// is cancelled, the feed stopped; the descriptor closes when both sides have finished.
    func close(reason: String) {
        guard !closing.exchange(true, ordering: .sequentiallyConsistent) else { return }
        closingSince.store(monotonicNanoseconds(), ordering: .relaxed)
        logger.info("closing", metadata: ["reason": "\(reason)"])
        queue.async { [self] in
            dispatchPrecondition(condition: .onQueue(queue))
            // A feed shared by replicas is stopped by the registry, after the other replicas are told.
            if let session = readSession, session.replicas <= 1 { session.feed.stop() }
            if readPaused {
                // A suspended source runs its cancel handler only once resumed.
                readPaused = false
                readSource?.resume()
            }
            readSource?.cancel()
        }
        wakeWriter()
    }

    private func wakeWriter() {
        if !writerScheduled.exchange(true, ordering: .sequentiallyConsistent) { writerWake.signal() }
        batchWait.load()?.notify()
    }

    private func sideFinished() {
        guard sidesFinished.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue == 2 else { return }
        // Both the read source and the writer are done with the descriptor.
        let session = sessionInfo.withLock { $0 }
        var cursorStep = nextStep.load(ordering: .relaxed)
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

    /// Resumes reading once the outbox has drained below its limit (after a pause for unread answers).
    private func resumeReadingIfPaused() {
        queue.async { [self] in
            dispatchPrecondition(condition: .onQueue(queue))
            guard readPaused, !isClosing, outboxBytes.load(ordering: .acquiring) <= server.options.limits.outboxBytes else { return }
            readPaused = false
            readSource?.resume()
        }
    }

    // MARK: Writer (on writerQueue)

    /// Sends until there is nothing to do (false) or the connection has finished (true: the writer's thread ends).
    private func writeLoop() -> Bool {
        dispatchPrecondition(condition: .onQueue(writerQueue))
        while true {
            if outboxPending.load(ordering: .sequentiallyConsistent) {
                guard flushOutbox() else { writeFailed(); continue }
            }
            if closing.load(ordering: .sequentiallyConsistent) {
                if outboxPending.load(ordering: .sequentiallyConsistent) { _ = flushOutbox() }
                // The writer's give-up closure refers to this connection: drop it, or the pair (and the
                // session's ring) would never be freed.
                writer = nil
                sideFinished()
                return true
            }
            if let writer, writer.isAtEnd {
                // The last step went out (or the session resumed at the end): Goodbye(end_of_stream)
                // follows at once, whatever the credit balance.
                endOfFeed(writer.session)
                continue
            }
            guard let writer, credits.load(ordering: .sequentiallyConsistent) > 0 else {
                // The client has not asked for more: the daemon waits on it (measured until the next batch goes out).
                if writer != nil, creditWaitStart == 0 { creditWaitStart = monotonicNanoseconds() }
                writerScheduled.store(false, ordering: .sequentiallyConsistent)
                let work = outboxPending.load(ordering: .sequentiallyConsistent) || closing.load(ordering: .sequentiallyConsistent)
                    || (writer != nil && credits.load(ordering: .sequentiallyConsistent) > 0)
                if work, !writerScheduled.exchange(true, ordering: .sequentiallyConsistent) { continue }
                return false
            }
            switch writer.sendNext(interrupt: { [self] in
                outboxPending.load(ordering: .relaxed) || closing.load(ordering: .relaxed)
            }) {
            case .sent(let step, let waited):
                if waited > 0 { recordWait(waited) }
                if waited > 0 || pendingClientWait > 0 {
                    server.metrics.clientWait.record(nanoseconds: pendingClientWait &+ waited)
                    pendingClientWait = 0
                }
                if creditWaitStart != 0 {
                    server.metrics.daemonWait.record(nanoseconds: monotonicNanoseconds() &- creditWaitStart)
                    creditWaitStart = 0
                }
                credits.wrappingSubtract(1, ordering: .sequentiallyConsistent)
                batchesSent.wrappingAdd(1, ordering: .relaxed)
                nextStep.store(step + 1, ordering: .relaxed)
                let global = UInt64(writer.session.worldSize) * UInt64(writer.session.batchSize)
                server.counters.recordBatch(rows: writer.session.batchSize, sequenceLength: server.stream.sequenceLength,
                                            endSequence: (step + 1) * global)
                writerTally?.recordBatch(rows: writer.session.batchSize, sequenceLength: server.stream.sequenceLength,
                                         endSequence: (step + 1) * global)
            case .waited(let nanoseconds):
                recordWait(nanoseconds)
                pendingClientWait &+= nanoseconds
            case .writeFailed(let error):
                writerFailureReason = error.description
                writeFailed()
            case .ended:
                endOfFeed(writer.session)
            }
        }
    }

    private func recordWait(_ nanoseconds: UInt64) {
        waitNanosecondsTotal.wrappingAdd(nanoseconds, ordering: .relaxed)
        var current = waitNanosecondsMax.load(ordering: .relaxed)
        while current < nanoseconds {
            let (done, original) = waitNanosecondsMax.compareExchange(expected: current, desired: nanoseconds, ordering: .relaxed)
            if done { break }
            current = original
        }
    }

    /// The feed ended: the curriculum's last step was sent, or a shard failed.
    private func endOfFeed(_ session: Session) {
        dispatchPrecondition(condition: .onQueue(writerQueue))
        if session.replicaLost.load(ordering: .sequentiallyConsistent) {
            // The feed was stopped because another replica left: the Error replica_lost is queued.
            close(reason: "replica lost")
            return
        }
        session.completed.store(true, ordering: .releasing)
        if let failure = session.feed.failure {
            logger.error("data error, closing the session", metadata: ["error": "\(failure)"])
            let detail = failure.frame.map { "\(failure.path) frame \($0)" } ?? failure.path
            var message = failure.description
            if server.options.onCorrupt == .quarantine {
                message += " (the shard passed verification at startup; quarantine is decided at startup only, so that every node serves "
                    + "the same stream: repair or replace the shard and restart the daemon)"
            }
            enqueue(ErrorMessage(code: .dataError, message: message, detail: detail))
            close(reason: "data error")
        } else {
            enqueue(Goodbye(reason: .endOfStream))
            close(reason: "end of stream after step \(nextStep.load(ordering: .relaxed))")
        }
    }

    private func enqueue(_ message: some WireMessage) {
        if let error = message as? ErrorMessage { server.counters.recordError(error.code) }
        var bytes: [UInt8] = []
        message.encodeFrame(into: &bytes)
        outboxBytes.wrappingAdd(bytes.count, ordering: .releasing)
        outbox.withLock { $0.frames.append(bytes) }
        outboxPending.store(true, ordering: .sequentiallyConsistent)
    }

    private func writeFailed() {
        dispatchPrecondition(condition: .onQueue(writerQueue))
        close(reason: "the client is gone (\(writerFailureReason))")
    }

    private var writerFailureReason = ""

    /// Sends every queued control frame; picks up the session after the Welcome.
    /// - Returns: false when the socket failed.
    private func flushOutbox() -> Bool {
        dispatchPrecondition(condition: .onQueue(writerQueue))
        let taken = outbox.withLock { box -> Outbox in
            outboxPending.store(false, ordering: .sequentiallyConsistent)
            let out = box
            box = Outbox()
            return out
        }
        for frame in taken.frames {
            let ok = frame.withUnsafeBytes { bytes in
                SocketSender.sendAll(fd: fd, [bytes], giveUp: giveUpWaiting)
            }
            outboxBytes.wrappingSubtract(frame.count, ordering: .releasing)
            if case .failure(let error) = ok {
                writerFailureReason = error.description
                return false
            }
        }
        resumeReadingIfPaused()
        if let session = taken.session {
            writer = BatchWriter(session: session, served: server.stream, fd: fd, giveUp: giveUpWaiting)
            writerTally = taken.tally
        }
        return true
    }

    /// Whether a blocked write should stop waiting: one second after the teardown began.
    private func giveUpWaiting() -> Bool {
        guard closing.load(ordering: .relaxed) else { return false }
        return monotonicNanoseconds() - closingSince.load(ordering: .relaxed) > 1_000_000_000
    }
}
