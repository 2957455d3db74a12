#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import Synchronization
import TokenfeedEngine
import TokenfeedProtocol
import TokenfeedShards
import TokenfeedSystem

/// What a ``ConnectionWriter`` reports to its connection (from the writer's thread).
protocol ConnectionWriterEvents: AnyObject, Sendable {
    /// The outbox was sent (the connection may read requests again if it paused).
    func writerDrainedOutbox()
    /// The session's feed ended for this connection (the writer sends no more batches).
    func writerFeedEnded(_ end: ConnectionStateMachine.FeedEnd)
    /// The socket failed (the writer sends nothing more).
    func writerFailed(_ reason: String)
    /// The writer has ended and no longer watches the socket (the descriptor may be closed once the
    /// reader is done too); called on the sender's queue.
    func writerFinished()
}

/// A connection's writer: the only code that writes to its socket. It sends the control frames
/// queued in its outbox (a lock taken only for control traffic, never per batch) and, once the
/// session is handed over, one batch per credit through a ``BatchWriter``.
///
/// It runs on a thread of its own, confined to `queue` (asserted in debug builds): it waits for the
/// session's packer, which must not hold a Dispatch pool thread. When it has nothing to do it sleeps
/// until ``wake()`` (an atomic flag guards against double signals and lost wake-ups); when the
/// client's socket is full it sleeps in its ``SocketSender`` until a `DispatchSourceWrite` fires —
/// never in a polling loop.
///
/// Credits are an atomic balance. Ending: ``stop()`` makes the writer flush what the outbox holds
/// (an Error or a Goodbye; a send blocked by a client that stopped reading gives up one second
/// later), cancel its socket watch and end its thread.
final class ConnectionWriter: @unchecked Sendable {
    /// What the read side hands over: control frames, and the session once it is open.
    private struct Outbox {
        var frames: [[UInt8]] = []
        var session: Session?
        /// What the daemon served the session's rank (handed over with the session).
        var tally: RankTally?
    }

    /// Credit balance: batches the client allows the writer to send.
    let credits = Atomic<UInt64>(0)
    /// Statistics for Stats (relaxed atomics).
    let batchesSent = Atomic<UInt64>(0)
    let nextStep = Atomic<UInt64>(0)
    let waitNanosecondsTotal = Atomic<UInt64>(0)
    let waitNanosecondsMax = Atomic<UInt64>(0)

    private let queue: DispatchQueue
    private let sender: SocketSender
    private let server: Server

    private let outbox = LockedValue(Outbox())
    private let outboxPending = Atomic<Bool>(false)
    /// Bytes of control frames queued (the read side pauses above `limits.outboxBytes`).
    private let outboxBytes = Atomic<Int>(0)
    private let scheduled = Atomic<Bool>(false)
    /// Signalled by ``wake()``; the writer's thread waits on it between rounds.
    private let wakeSignal = DispatchSemaphore(value: 0)
    /// Where the writer parks waiting for a packed batch (the session ring's consumer side, set by
    /// ``open(_:welcome:tally:)``): ``wake()`` notifies it too, so that a control frame or ``stop()``
    /// interrupts that wait.
    private let batchWait = AtomicLazyReference<EventCount>()
    private let stopping = Atomic<Bool>(false)

    /// On `queue` only.
    private var batchWriter: BatchWriter?
    private var tally: RankTally?
    /// The client wait not yet recorded (a wait `.waited` interrupted) and when the writer began
    /// waiting for credit with a batch to send (0: not waiting).
    private var pendingClientWait: UInt64 = 0
    private var creditWaitStart: UInt64 = 0
    /// Whether the socket failed (nothing more is sent).
    private var failed = false

    /// How long a send blocked by a full socket may still wait once ``stop()`` is called.
    static let giveUpNanoseconds: UInt64 = 1_000_000_000

    init(connectionID: UInt64, sender: SocketSender, server: Server) {
        self.sender = sender
        self.server = server
        queue = DispatchQueue(label: "tokenfeed.connection\(connectionID).write")
    }

    /// The writers' thread name (`/proc/PID/task/TID/comm`), so that tests and operators can tell them apart.
    static let threadName = "tf-writer"

    /// Starts the writer's thread; it reports to `events` until it ends (after ``stop()``).
    func start(events: some ConnectionWriterEvents) {
        DedicatedThread.run { [self] in
            nameThisThread(Self.threadName)
            // One `sync` for the thread's life (nothing else runs on `queue`): a `sync` per wake-up
            // allocated three times (a block copy and two boxes) per batch when the writer waits for
            // credit after each one (AllocationProbe, `lockstep`).
            queue.sync {
                while true {
                    wakeSignal.wait()
                    if writeLoop(events) { return }
                }
            }
        }
    }

    /// Bytes of control frames queued and not yet sent.
    var queuedControlBytes: Int { outboxBytes.load(ordering: .acquiring) }

    // MARK: Any queue

    /// Queues an encoded control frame and wakes the writer.
    func enqueue(_ frame: [UInt8]) {
        outboxBytes.wrappingAdd(frame.count, ordering: .releasing)
        outbox.withLock { $0.frames.append(frame) }
        outboxPending.store(true, ordering: .sequentiallyConsistent)
        wake()
    }

    /// Queues the Welcome and hands the session over: batches follow it.
    func open(_ session: Session, welcome: [UInt8], tally: RankTally) {
        nextStep.store(session.startStep, ordering: .relaxed)
        _ = batchWait.storeIfNil(session.ring.consumerEvents)
        outboxBytes.wrappingAdd(welcome.count, ordering: .releasing)
        outbox.withLock {
            $0.frames.append(welcome)
            $0.session = session
            $0.tally = tally
        }
        outboxPending.store(true, ordering: .sequentiallyConsistent)
        wake()
    }

    /// Adds `count` to the credit balance and wakes the writer.
    /// - Returns: the new balance.
    func grant(_ count: UInt32) -> UInt64 {
        let balance = credits.wrappingAdd(UInt64(count), ordering: .sequentiallyConsistent).newValue
        wake()
        return balance
    }

    /// Makes the writer flush its outbox and end (idempotent).
    func stop() {
        guard !stopping.exchange(true, ordering: .sequentiallyConsistent) else { return }
        sender.giveUp(after: Self.giveUpNanoseconds)
        wake()
    }

    func wake() {
        if !scheduled.exchange(true, ordering: .sequentiallyConsistent) { wakeSignal.signal() }
        batchWait.load()?.notify()
    }

    // MARK: On `queue`

    /// Sends until there is nothing to do (false) or the writer has finished (true: its thread ends).
    private func writeLoop(_ events: some ConnectionWriterEvents) -> Bool {
        dispatchPrecondition(condition: .onQueue(queue))
        while true {
            if outboxPending.load(ordering: .sequentiallyConsistent) {
                if !flushOutbox(events) { fail(events) }
            }
            if stopping.load(ordering: .sequentiallyConsistent) {
                if outboxPending.load(ordering: .sequentiallyConsistent), !failed { _ = flushOutbox(events) }
                // The batch writer holds the session's ring: drop it with the thread.
                batchWriter = nil
                sender.cancel { events.writerFinished() }
                return true
            }
            if let batchWriter, batchWriter.isAtEnd {
                // The last step went out (or the session resumed at the end): Goodbye(end_of_stream)
                // follows at once, whatever the credit balance.
                feedEnded(batchWriter.session, events)
                continue
            }
            guard let batchWriter, credits.load(ordering: .sequentiallyConsistent) > 0 else {
                // The client has not asked for more: the daemon waits on it (measured until the next batch goes out).
                if batchWriter != nil, creditWaitStart == 0 { creditWaitStart = monotonicNanoseconds() }
                scheduled.store(false, ordering: .sequentiallyConsistent)
                let work = outboxPending.load(ordering: .sequentiallyConsistent) || stopping.load(ordering: .sequentiallyConsistent)
                    || (batchWriter != nil && credits.load(ordering: .sequentiallyConsistent) > 0)
                if work, !scheduled.exchange(true, ordering: .sequentiallyConsistent) { continue }
                return false
            }
            switch batchWriter.sendNext(interrupt: { [self] in
                outboxPending.load(ordering: .relaxed) || stopping.load(ordering: .relaxed)
            }) {
            case .sent(let step, let waited):
                recordSent(step: step, waited: waited, session: batchWriter.session)
            case .waited(let nanoseconds):
                recordWait(nanoseconds)
                pendingClientWait &+= nanoseconds
            case .writeFailed(let error):
                failureReason = error.description
                fail(events)
            case .ended:
                feedEnded(batchWriter.session, events)
            }
        }
    }

    private func recordSent(step: UInt64, waited: UInt64, session: Session) {
        dispatchPrecondition(condition: .onQueue(queue))
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
        let global = UInt64(session.worldSize) * UInt64(session.batchSize)
        server.counters.recordBatch(rows: session.batchSize, sequenceLength: server.stream.sequenceLength, endSequence: (step + 1) * global)
        tally?.recordBatch(rows: session.batchSize, sequenceLength: server.stream.sequenceLength, endSequence: (step + 1) * global)
    }

    private func recordWait(_ nanoseconds: UInt64) {
        dispatchPrecondition(condition: .onQueue(queue))
        waitNanosecondsTotal.wrappingAdd(nanoseconds, ordering: .relaxed)
        var current = waitNanosecondsMax.load(ordering: .relaxed)
        while current < nanoseconds {
            let (done, original) = waitNanosecondsMax.compareExchange(expected: current, desired: nanoseconds, ordering: .relaxed)
            if done { break }
            current = original
        }
    }

    /// The feed ended (the curriculum's last step was sent, a shard failed, or another replica left):
    /// no more batches; the connection decides what to send.
    private func feedEnded(_ session: Session, _ events: some ConnectionWriterEvents) {
        dispatchPrecondition(condition: .onQueue(queue))
        batchWriter = nil
        if session.replicaLost.load(ordering: .sequentiallyConsistent) {
            // The feed was stopped because another replica left: the Error replica_lost is queued.
            events.writerFeedEnded(.replicaLost)
            return
        }
        session.completed.store(true, ordering: .releasing)
        if let failure = session.feed.failure {
            session.logger.error("data error, closing the session", metadata: ["error": "\(failure)"])
            let detail = failure.frame.map { "\(failure.path) frame \($0)" } ?? failure.path
            var message = failure.description
            if server.options.onCorrupt == .quarantine {
                message += " (the shard passed verification at startup; quarantine is decided at startup only, so that every node serves "
                    + "the same stream: repair or replace the shard and restart the daemon)"
            }
            events.writerFeedEnded(.dataError(ErrorMessage(code: .dataError, message: message, detail: detail)))
        } else {
            events.writerFeedEnded(.endOfStream(nextStep: nextStep.load(ordering: .relaxed)))
        }
    }

    /// Why the socket failed (for the connection's log).
    private var failureReason = ""

    /// The socket failed: send nothing more and tell the connection (once).
    private func fail(_ events: some ConnectionWriterEvents) {
        dispatchPrecondition(condition: .onQueue(queue))
        batchWriter = nil
        guard !failed else { return }
        failed = true
        events.writerFailed(failureReason)
    }

    /// Sends every queued control frame; picks up the session after the Welcome.
    /// - Returns: false when the socket failed.
    private func flushOutbox(_ events: some ConnectionWriterEvents) -> Bool {
        dispatchPrecondition(condition: .onQueue(queue))
        let taken = outbox.withLock { box -> Outbox in
            outboxPending.store(false, ordering: .sequentiallyConsistent)
            let out = box
            box = Outbox()
            return out
        }
        defer { outboxBytes.wrappingSubtract(taken.frames.reduce(0) { $0 + $1.count }, ordering: .releasing) }
        guard !failed else { return false }
        for frame in taken.frames {
            if case .failure(let error) = frame.withUnsafeBytes({ sender.sendAll($0) }) {
                failureReason = error.description
                return false
            }
        }
        events.writerDrainedOutbox()
        if let session = taken.session {
            batchWriter = BatchWriter(session: session, served: server.stream, sender: sender)
            tally = taken.tally
        }
        return true
    }
}

/// Names the calling thread (at most 15 bytes; best effort) through `/proc/thread-self/comm`:
/// `pthread_setname_np` and `prctl` are not visible to Swift from Glibc.
private func nameThisThread(_ name: String) {
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    _ = Array(name.utf8.prefix(15)).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}
