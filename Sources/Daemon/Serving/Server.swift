#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import Logging
import Synchronization
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedShards
import TokenfeedProtocol

/// The tokenfeed daemon: accepts connections on a Unix socket and serves each its own rank slice.
///
/// ```swift
/// let server = try Server.open(options: options, logger: logger)   // curriculum and shard headers first
/// try server.start()                                               // then listen
/// …
/// server.shutdown()                                                // Error shutting_down to every client
/// ```
/// Accepting runs on a `DispatchSourceRead` of the listening socket; every connection has its own
/// read source, writer queue and feed (see ``Connection``).
public final class Server: @unchecked Sendable {
    /// The stream this daemon serves.
    public let stream: ServedStream
    /// The options it runs with.
    public let options: ServerOptions
    let logger: Logger
    let registry = JobRegistry()
    let counters = ServerCounters()
    /// The Prometheus metrics (``DaemonMetrics``).
    let metrics = DaemonMetrics()
    /// The `GET /metrics` endpoint, with `--metrics-listen`; guarded by `lifecycle`.
    private var metricsEndpoint: MetricsEndpoint?
    /// Rewrites stats.json every `statsIntervalSeconds` while sessions are open; guarded by `lifecycle`.
    private var statsTimer: (any DispatchSourceTimer)?
    /// Decompressed frames shared by every session (`--preload-bytes`): one decompression per frame
    /// per node while the frame stays in the budget.
    public let frameCache: FrameCache
    private let connections = LockedValue<[UInt64: Connection]>([:])
    private let nextID = Atomic<UInt64>(1)
    /// Memory reserved from `limits.totalMemoryBytes`: the frame cache's pool, then each accepted
    /// Hello's ring.
    private let reservedMemory: LockedValue<Int>
    /// Sessions each client process may set up (`--session-rate`, `--session-burst`).
    private let sessionSetups: SessionSetupRate
    /// When an accept failure or a `busy` refusal was last logged (logged at most once per second each).
    private var lastAcceptFailureLog: UInt64 = 0
    private var lastBusyLog: UInt64 = 0
    /// When a Hello refused by the session set-up rate was last logged (any connection's queue).
    private let lastSessionRateLog = Atomic<UInt64>(0)
    private let acceptQueue = DispatchQueue(label: "tokenfeed.accept")
    /// Set by `start` and read by `shutdown`, both under `lifecycle`.
    private var acceptSource: (any DispatchSourceRead)?
    private var listener: ListeningSocket?
    /// systemd's watchdog pings, when asked for (``ServiceWatchdog``); guarded by `lifecycle`.
    private var watchdog: ServiceWatchdog?
    /// The background count of bestfit rows started at READY (nil with `concat` packing).
    private var bestFitCount: BestFitBackgroundCount?
    private let stopping = Atomic<Bool>(false)
    /// Orders `start` and `shutdown` (and guards `acceptSource` between them).
    private let lifecycle = LockedValue<Void>(())
    /// Who may connect; replaced by ``reload(logLevel:peerPolicy:)`` on SIGHUP.
    private let peerPolicy: LockedValue<PeerPolicy>
    private let allClosed = DispatchSemaphore(value: 0)
    /// Signalled when the accept source's cancel handler has closed the listening socket (and removed its file).
    private let listenerClosed = DispatchSemaphore(value: 0)

    /// Loads the curriculum and opens every dataset folder and shard (headers, metadata, checksums
    /// of the metadata) — everything that can fail on bad input — without listening yet. With
    /// `--verify-shards startup` or `--on-corrupt quarantine` every frame of every shard is verified
    /// too, and under `quarantine` the corrupt shards are left out (``StartupShardCheck``).
    /// - Throws: `ServerStartupError` naming the file and line:column (curriculum) or the dataset,
    ///   shard, frame and problem.
    public static func open(options: ServerOptions, logger: Logger) throws(ServerStartupError) -> Server {
        let loadStarted = monotonicNanoseconds()
        try prepareStateDirectory(options.stateDirectory)
        var curriculum: Curriculum
        do { curriculum = try CurriculumLoader.load(path: options.curriculumPath, dataRoot: options.dataRoot) } catch {
            throw ServerStartupError(.curriculum, error.description)
        }
        curriculum.order = options.order
        for warning in curriculum.warnings { logger.warning("\(warning.description)") }
        let (stream, quarantine) = try StartupShardCheck.open(curriculum: curriculum, policy: options.onCorrupt,
                                                              verification: options.verifyShards,
                                                              bestFitCacheDirectory: options.stateDirectory.map { $0 + "/bestfit-rows" },
                                                              nanotronBlendCacheDirectory: options.stateDirectory.map { $0 + "/nanotron-blend" },
                                                              logger: logger)
        try checkPreloadBudget(stream: stream, budgetBytes: options.preloadBytes)
        let server = Server(stream: ServedStream(stream: stream, quarantine: quarantine, recordDirectory: options.stateDirectory.map { $0 + "/streams" }),
                            options: options, logger: logger)
        server.counters.loadStartedAt.store(loadStarted, ordering: .relaxed)
        return server
    }

    /// Refuses a shard whose largest frame (decompressed, plus its compressed bytes) does not fit twice
    /// in the preload budget: a session could not hold the frame it needs next to the one it reads.
    /// - Throws: `ServerStartupError` naming the shard, its frame size and the budget it needs.
    static func checkPreloadBudget(stream: GlobalStream, budgetBytes: Int) throws(ServerStartupError) {
        // A dataset whose largest frames (decompressed and compressed, of any shards) fit together
        // has no shard that does not: only the others are looked at shard by shard.
        let suspect = stream.datasets.lazy.filter { $0.shards.largestDecodedFrame + $0.shards.largestFrame > budgetBytes / 2 }
        for shard in suspect.flatMap(\.shards) {
            let frame = Preloader.largestFrameBytes(shard) + shard.largestFrame
            guard frame <= budgetBytes / 2 else {
                throw ServerStartupError(.preloadBudget, "\(shard.path): its largest frame takes \(frame) bytes (decompressed and compressed; "
                                         + "tokens_per_frame \(shard.metadata.tokensPerFrame)); --preload-bytes \(budgetBytes) holds fewer than two such "
                                         + "frames: raise --preload-bytes to at least \(frame.multipliedReportingOverflow(by: 2).partialValue) or re-shard with smaller frames")
            }
        }
    }

    /// A server for an opened stream.
    public init(stream: ServedStream, options: ServerOptions, logger: Logger) {
        self.stream = stream
        self.options = options
        self.logger = logger
        self.peerPolicy = LockedValue(options.peerPolicy)
        self.frameCache = FrameCache(stream: stream.stream, budgetBytes: options.preloadBytes)
        self.reservedMemory = LockedValue(frameCache.residentBytes)
        self.sessionSetups = SessionSetupRate(perSecond: options.limits.sessionSetupsPerSecond, burst: options.limits.sessionSetupBurst)
    }

    /// The socket path clients connect to.
    public var socketPath: String { options.socketPath }

    /// Starts listening: on the socket systemd passed (`LISTEN_FDS`), else on `options.socketPath`.
    /// - Throws: `ServerStartupError` naming the call and path (path in use, no permission, …).
    public func start() throws(ServerStartupError) {
        // Under the lifecycle lock, so that a shutdown (a signal) either comes first — then nothing is
        // bound — or waits until the accept source exists and removes the socket file with it.
        try lifecycle.withLock { _ throws(ServerStartupError) in try startLocked() }
    }

    private func startLocked() throws(ServerStartupError) {
        guard !stopping.load(ordering: .acquiring) else { return }
        try Self.prepareStateDirectory(options.stateDirectory)
        // The metrics endpoint first: when the socket appears, GET /metrics answers.
        if let address = options.metricsListen {
            do {
                let endpoint = try MetricsEndpoint(address: address) { [weak self] in self?.metricsText() ?? "" }
                endpoint.start()
                metricsEndpoint = endpoint
                logger.info("serving metrics", metadata: ["address": "\(address.isIPv6 ? "[\(address.host)]" : address.host):\(endpoint.boundPort)"])
            } catch {
                throw ServerStartupError(.metricsEndpoint, error)
            }
        }
        let socket: ListeningSocket
        if let activated = ListeningSocket.activated() {
            socket = activated
            logger.info("listening on the socket passed by systemd (fd 3)")
        } else {
            do { socket = try ListeningSocket.bind(path: options.socketPath, mode: options.socketMode) } catch {
                metricsEndpoint?.stop()
                metricsEndpoint = nil
                throw ServerStartupError(error.code == EADDRINUSE ? .socketInUse : .socket, error)
            }
            logger.info("listening", metadata: ["socket": "\(options.socketPath)", "mode": "0\(String(options.socketMode, radix: 8))"])
        }
        do { try stream.writeRecord() } catch {
            logger.warning("cannot record the stream's description in the state directory", metadata: ["error": "\(error)"])
        }
        listener = socket
        let source = DispatchSource.makeReadSource(fileDescriptor: socket.fd, queue: acceptQueue)
        source.setEventHandler { [self] in acceptAll(socket.fd) }
        source.setCancelHandler { [listenerClosed] in
            socket.close()
            listenerClosed.signal()
        }
        acceptSource = source
        source.resume()
        logger.info("serving", metadata: [
            "curriculum": "\(stream.stream.curriculum.sourcePath)", "fingerprint": "0x\(hex16(stream.fingerprint))",
            "datasets": "\(stream.datasets.count)", "stages": "\(stream.stages.count)",
            "sequences": "\(stream.stream.plan.totalSequences)", "on_corrupt": "\(options.onCorrupt.rawValue)",
            "order": "\(stream.stream.curriculum.order.rawValue)",
            "quarantined": "\(stream.quarantine.entries.count)", "quarantine_digest": "0x\(hex16(stream.quarantine.digest))",
        ])
        startStatsTimer()
        if let dir = options.stateDirectory {
            let legacy = JobStateFiles.legacyCursorFiles(stateDirectory: dir)
            if !legacy.isEmpty {
                logger.notice("cursors are now kept per job, in \(dir)/jobs/<job>/rank-R.cursor; the rank-R.cursor files of an older daemon at the top of the state directory are left as they were and no longer written",
                              metadata: ["files": "\(legacy.joined(separator: ","))"])
            }
        }
        counters.readyAt.store(monotonicNanoseconds(), ordering: .relaxed)
        let served = ServiceWatchdog.boundPath(fd: socket.fd) ?? options.socketPath
        SystemdNotifier.notify("READY=1\nSTATUS=\(statusLine(socket: served))")
        watchdog = ServiceWatchdog.start(probe: acceptQueue) { [weak self] in self?.statusLine(socket: served) ?? "stopping" }
        startBestFitCount()
    }

    /// With `bestfit` packing, starts counting every shard's rows in the background
    /// (``BestFitBackgroundCount``; docs/PACKING.md), with a log line when it starts and one when it ends.
    private func startBestFitCount() {
        let logger = self.logger
        let stream = self.stream.stream
        let started = BestFitBackgroundCount.start(stream: stream, threads: options.bestFitCountThreads) { outcome in
            if let error = outcome.firstError {
                logger.warning("bestfit background count: a shard could not be counted; a session that needs it reports the error",
                               metadata: ["error": "\(error)"])
            }
            logger.info(outcome.cancelled ? "bestfit background count stopped" : "bestfit rows counted in the background", metadata: [
                "shards": "\(outcome.shards)", "from_cache": "\(outcome.statistics.shardsFromCache)",
                "counted": "\(outcome.statistics.shardsCounted)", "documents_counted": "\(outcome.statistics.documentsCounted)",
                "seconds": "\(outcome.seconds)",
            ])
        }
        guard let started else { return }
        bestFitCount = started
        logger.info("counting bestfit rows in the background", metadata: [
            "shards": "\(stream.datasets.reduce(0) { $0 + $1.shards.count })", "datasets": "\(stream.datasets.count)",
            "threads": "\(options.bestFitCountThreads)", "cache": "\(options.stateDirectory.map { $0 + "/bestfit-rows" } ?? "none (memory only)")",
        ])
    }

    private func acceptAll(_ listenFD: Int32) {
        while !stopping.load(ordering: .acquiring) {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                let code = errno
                if code == EINTR || code == ECONNABORTED { continue }
                if code != EAGAIN && code != EWOULDBLOCK { acceptFailed(code) }
                return
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            setNonBlocking(fd)
            counters.connectionsAccepted.wrappingAdd(1, ordering: .relaxed)
            guard let peer = admittedPeer(fd) else { continue }
            if connectionCount >= options.limits.maxConnections {
                refuseBusy(fd)
                continue
            }
            let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
            let connection = Connection(id: id, fd: fd, server: self, logger: logger, peerPID: peer.pid)
            connections.withLock { $0[id] = connection }
            logger.debug("accepted", metadata: ["connection": "\(id)"])
            connection.start()
        }
    }

    /// The credentials of the accepted `fd`'s peer if it may connect (``PeerPolicy``). A refused peer gets an
    /// `auth_failed` Error frame (the socket's send buffer is empty, so the small frame is written
    /// whole without blocking) before anything is read from it, its descriptor is closed, and the
    /// refusal is logged with its uid, gid and pid.
    private func admittedPeer(_ fd: Int32) -> PeerCredentials? {
        let peer = PeerCredentials(fd: fd)
        if let peer, peerPolicy.withLock({ $0.allows(uid: peer.uid, gid: peer.gid, supplementaryGroups: peer.groups) }) { return peer }
        let who = peer.map { "uid \($0.uid), gid \($0.gid), pid \($0.pid)" } ?? "unknown peer credentials"
        logger.warning("connection refused: peer not allowed", metadata: [
            "uid": "\(peer.map { String($0.uid) } ?? "?")", "gid": "\(peer.map { String($0.gid) } ?? "?")",
            "pid": "\(peer.map { String($0.pid) } ?? "?")",
        ])
        let frame = ErrorMessage(code: .authFailed, message: "this user may not connect to the daemon (\(who)); see allow_users and allow_groups",
                                 detail: "SO_PEERCRED").encodeFrame()
        counters.recordError(.authFailed)
        _ = frame.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        _ = Glibc.close(fd)
        return nil
    }

    /// Applies what SIGHUP re-reads: the log level is the caller's (its log handler), the peer policy is here.
    /// Running sessions are untouched.
    public func reload(peerPolicy policy: PeerPolicy) {
        peerPolicy.withLock { $0 = policy }
    }

    /// An accept failure (descriptors exhausted, no memory, …): logged at most once per second, and the
    /// accept source paused for 100 ms so that a persistent failure does not spin.
    private func acceptFailed(_ code: Int32) {
        dispatchPrecondition(condition: .onQueue(acceptQueue))
        let now = monotonicNanoseconds()
        if now - lastAcceptFailureLog >= 1_000_000_000 {
            lastAcceptFailureLog = now
            logger.error("accept failed; pausing accepts for 100 ms (logged at most once per second)",
                         metadata: ["error": "\(SystemCallError("accept", code: code))"])
        }
        guard let acceptSource else { return }
        acceptSource.suspend()
        acceptQueue.asyncAfter(deadline: .now() + .milliseconds(100)) { [self] in self.acceptSource?.resume() }
    }

    /// Refuses a connection over `limits.maxConnections`: one `busy` Error frame (small enough for an
    /// empty socket buffer, sent without waiting), then close.
    private func refuseBusy(_ fd: Int32) {
        dispatchPrecondition(condition: .onQueue(acceptQueue))
        let limit = options.limits.maxConnections
        let frame = ErrorMessage(code: .busy, message: "the daemon serves its maximum of \(limit) connections (--max-connections); retry later",
                                 detail: "max_connections").encodeFrame()
        counters.recordError(.busy)
        _ = frame.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        _ = Glibc.close(fd)
        let now = monotonicNanoseconds()
        if now - lastBusyLog >= 1_000_000_000 {
            lastBusyLog = now
            logger.warning("connection refused: busy (logged at most once per second)", metadata: ["max_connections": "\(limit)"])
        }
    }

    /// Takes one session set-up from process `pid`'s allowance (``SessionSetupRate``).
    /// - Returns: nil when the session may be set up; else the refusal — `busy` (`detail`
    ///   `session_rate`) naming the limit — and the nanoseconds until the process may set up another.
    func refuseSessionSetup(pid: Int32) -> (error: ProtocolError, retryAfterNanoseconds: UInt64)? {
        let now = monotonicNanoseconds()
        let wait = sessionSetups.take(pid: pid, now: now)
        guard wait > 0 else { return nil }
        let last = lastSessionRateLog.load(ordering: .relaxed)
        if now &- last >= 1_000_000_000, lastSessionRateLog.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged {
            logger.warning("session refused: busy, the process sets up sessions faster than --session-rate (logged at most once per second)",
                           metadata: ["pid": "\(pid)", "session_rate": "\(sessionSetups.perSecond)", "session_burst": "\(sessionSetups.burst)"])
        }
        let error = ProtocolError(.busy, "process \(pid) has set up \(sessionSetups.burst) sessions and may set up \(sessionSetups.perSecond) more a second "
                                  + "(--session-rate, --session-burst); retry now or reuse sessions", detail: "session_rate")
        return (error, wait)
    }

    /// Reserves `bytes` of session memory for a Hello of `batchSize` rows.
    /// - Throws: `limit_exceeded` naming the per-session or total limit, the need and what is left.
    func reserveSessionMemory(_ bytes: Int, batchSize: UInt32) throws(ProtocolError) {
        let limits = options.limits
        guard bytes <= limits.sessionMemoryBytes else {
            throw ProtocolError(.limitExceeded, "Hello.batch_size at offset 32: a session of \(batchSize) rows needs \(bytes) bytes (its ring), "
                                + "above the per-session limit of \(limits.sessionMemoryBytes) bytes (--session-memory); use a smaller batch_size",
                                detail: "Hello.batch_size")
        }
        let left: Int? = reservedMemory.withLock { reserved in
            guard bytes <= limits.totalMemoryBytes - reserved else { return limits.totalMemoryBytes - reserved }
            reserved += bytes
            return nil
        }
        if let left {
            throw ProtocolError(.limitExceeded, "Hello.batch_size at offset 32: a session of \(batchSize) rows needs \(bytes) bytes; \(left) of the daemon's "
                                + "total of \(limits.totalMemoryBytes) bytes (--total-memory) are left (the shared frame cache takes \(frameCache.residentBytes)); retry later or use a smaller batch_size",
                                detail: "Hello.batch_size")
        }
    }

    /// Returns session memory reserved by ``reserveSessionMemory(_:batchSize:)``.
    func releaseSessionMemory(_ bytes: Int) {
        reservedMemory.withLock { $0 -= bytes }
    }

    /// Called by a connection once its descriptor is closed.
    func connectionClosed(_ connection: Connection, session: Session?, nextStep: UInt64) {
        // Save first, then leave the table: `shutdown` waits only while connections are in the table,
        // so a cursor written after leaving it could be cut off by the process exiting.
        if let session { saveState(jobID: session.jobID, rank: session.rank, cursor: stream.cursor(nextStep: nextStep, worldSize: session.worldSize,
                                                                          batchSize: session.batchSize)) }
        let remaining = connections.withLock { table -> Int in
            table[connection.id] = nil
            return table.count
        }
        #if canImport(Glibc)
        // A session's ring and preload pool are freed by now; give glibc's arenas back to the system, or
        // freed memory of many short sessions ratchets the resident set up.
        if session != nil { _ = mallocTrim(0) }
        #endif
        if remaining == 0, stopping.load(ordering: .acquiring) { allClosed.signal() }
    }

    /// Number of open connections.
    public var connectionCount: Int { connections.withLock { $0.count } }

    /// The open sessions' job, rank and feed progress (what each preloader planned), in connection order.
    public func sessionProgress() -> [(jobID: String, rank: UInt32, progress: FeedProgress)] {
        let open = connections.withLock { Array($0.values) }.sorted { $0.id < $1.id }
        return open.compactMap { connection in
            connection.sessionInfo.withLock { $0 }.map { ($0.jobID, $0.rank, $0.feed.progress) }
        }
    }

    /// Stops accepting, sends `shutting_down` to every client, waits up to `timeout` seconds for the
    /// connections to close, writes the state directory and removes the socket file. Idempotent.
    public func shutdown(timeout: Double = 3) {
        guard let acceptSource = lifecycle.withLock({ _ -> (any DispatchSourceRead)?? in
            if !stopping.load(ordering: .acquiring) { watchdog?.stop() }
            return stopping.exchange(true, ordering: .acquiringAndReleasing) ? nil : .some(acceptSource)
        }) else { return }
        SystemdNotifier.notify("STOPPING=1")
        logger.info("shutting down")
        lifecycle.withLock { _ in
            metricsEndpoint?.stop()
            statsTimer?.cancel()
            bestFitCount?.cancel()
        }
        if let acceptSource {
            acceptSource.cancel()
            // The cancel handler runs on the accept queue: wait for it, so the socket file is gone when this returns.
            if listenerClosed.wait(timeout: .now() + 1) == .timedOut { logger.warning("the listening socket did not close within 1 s") }
        }
        let open = connections.withLock { Array($0.values) }
        for connection in open {
            connection.send(ErrorMessage(code: .shuttingDown, message: "the daemon is stopping; reconnect later and resume from your last cursor"),
                            requestID: 0)
            connection.close(reason: "daemon shutdown")
        }
        if !open.isEmpty, connectionCount > 0 {
            if allClosed.wait(timeout: .now() + timeout) == .timedOut {
                logger.warning("connections still open at exit", metadata: ["count": "\(connectionCount)"])
            }
        }
        saveStats()
        logger.info("stopped")
    }

    // MARK: Metrics

    /// The daemon's metrics in the Prometheus text exposition format (`GET /metrics`, `tokenfeed stats --prometheus`).
    public func metricsText() -> String { metrics.render(self) }

    /// The port of the `GET /metrics` endpoint, nil without `--metrics-listen`.
    public var metricsPort: UInt16? { lifecycle.withLock { _ in metricsEndpoint?.boundPort } }

    /// Starts rewriting stats.json (the daemon's and every open job's) every `statsIntervalSeconds`
    /// while sessions are open, so that whatever reads it never sees more than a few seconds' staleness.
    private func startStatsTimer() {
        guard options.stateDirectory != nil, options.statsIntervalSeconds > 0 else { return }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "tokenfeed.stats"))
        let interval = DispatchTimeInterval.seconds(options.statsIntervalSeconds)
        timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(200))
        timer.setEventHandler { [weak self] in
            guard let self, !stopping.load(ordering: .acquiring) else { return }
            let jobs = Set(openSessions().map(\.session.jobID))
            if !jobs.isEmpty { saveStats(jobs: jobs) }
        }
        statsTimer = timer
        timer.resume()
    }

    // MARK: State directory

    /// Creates the state directory (mode 0755) when missing and checks that no other user can write
    /// to it (``AtomicFile/checkPrivateDirectory(_:)``), before anything is written there or bound.
    /// - Throws: `ServerStartupError` naming the directory, its owner or mode, and the fix.
    static func prepareStateDirectory(_ directory: String?) throws(ServerStartupError) {
        guard let directory else { return }
        if mkdir(directory, 0o755) != 0, errno != EEXIST { throw ServerStartupError(.stateDirectory, SystemCallError("mkdir \(directory)")) }
        do { try AtomicFile.checkPrivateDirectory(directory) } catch { throw ServerStartupError(.stateDirectory, "state directory \(error)") }
    }

    /// Writes rank `rank`'s cursor of job `jobID` (``JobStateFiles``), then the job's and the daemon's stats.json.
    private func saveState(jobID: String, rank: UInt32, cursor: Cursor) {
        guard let dir = options.stateDirectory else { return }
        do {
            try JobStateFiles.createFolder(stateDirectory: dir, jobID: jobID)
            try writeTextFileAtomically(JobStateFiles.cursorPath(stateDirectory: dir, jobID: jobID, rank: rank), cursor.text + "\n")
        } catch {
            logger.warning("cannot write the state directory", metadata: ["error": "\(error)"])
        }
        saveStats(jobs: [jobID])
    }

    /// Writes `stats.json` of the daemon and of each of `jobs` (atomically; a failure is logged).
    func saveStats(jobs: Set<String> = []) {
        guard let dir = options.stateDirectory else { return }
        do {
            for job in jobs.sorted() {
                try JobStateFiles.createFolder(stateDirectory: dir, jobID: job)
                try writeTextFileAtomically(JobStateFiles.statsPath(stateDirectory: dir, jobID: job), StatsJSON.render(statsSnapshot(jobID: job)) + "\n")
            }
            try writeTextFileAtomically("\(dir)/stats.json", StatsJSON.render(statsSnapshot()) + "\n")
        } catch {
            logger.warning("cannot write the state directory", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Stats

    /// The daemon's state now, as a Stats message: with `jobID`, that job's — its position (the furthest
    /// of its ranks), the tokens and batches this daemon sent its ranks, its sessions; without, the
    /// furthest position of any session, the daemon's totals and every session.
    public func statsSnapshot(jobID: String? = nil) -> Stats {
        let curriculum = stream.stream.curriculum
        let tallies = jobID.map { job in counters.allTallies().filter { $0.key.jobID == job } }
        let position = tallies.map { $0.map { $0.endSequence.load(ordering: .relaxed) }.max() ?? 0 }
            ?? counters.furthestSequence.load(ordering: .relaxed)
        let progress = StreamProgress(stream: stream.stream, position: position)
        let stage = progress.stage
        var targets = [Double](repeating: 0, count: curriculum.datasets.count)
        for weight in curriculum.stages[stage].weights { targets[weight.dataset] = weight.share }
        let length = UInt64(stream.sequenceLength)
        let inStage = progress.sequencesInStage[stage]
        let datasets = curriculum.datasets.indices.map { d in
            Stats.Dataset(name: curriculum.datasets[d].name, targetShare: targets[d],
                          realizedShare: inStage == 0 ? 0 : Double(progress.countsInStage[stage][d]) / Double(inStage),
                          tokensServed: progress.counts[d] * length,
                          epoch: progress.epoch(ofDataset: d, stream: stream.stream, sequenceLength: stream.sequenceLength),
                          quarantinedShards: UInt32(stream.quarantine.count(dataset: d)))
        }
        var clients: [Stats.Client] = []
        var ringCapacity: UInt32 = 0
        var ringOccupied: UInt32 = 0
        // The frame cache is the daemon's, shared by the sessions: counted once.
        let preloadBytes = UInt64(frameCache.residentBytes)
        let preloadBudget = UInt64(options.preloadBytes)
        for (connection, session) in openSessions() where jobID == nil || session.jobID == jobID {
            ringCapacity += UInt32(session.ring.slotCount)
            ringOccupied += UInt32(session.ring.publishedCount)
            clients.append(Stats.Client(
                rank: session.rank, worldSize: session.worldSize, batchSize: session.batchSize,
                credits: UInt32(clamping: connection.writer.credits.load(ordering: .relaxed)),
                nextStep: connection.writer.nextStep.load(ordering: .relaxed),
                batchesSent: connection.writer.batchesSent.load(ordering: .relaxed),
                waitNanosecondsTotal: connection.writer.waitNanosecondsTotal.load(ordering: .relaxed),
                waitNanosecondsMax: connection.writer.waitNanosecondsMax.load(ordering: .relaxed), jobID: session.jobID))
        }
        return Stats(currentStage: UInt32(stage), sequenceLength: stream.sequenceLength, positionSequence: progress.position,
                     tokensServed: tallies.map { $0.reduce(0) { $0 &+ $1.tokens.load(ordering: .relaxed) } }
                        ?? counters.tokensServed.load(ordering: .relaxed),
                     batchesServed: tallies.map { $0.reduce(0) { $0 &+ $1.batches.load(ordering: .relaxed) } }
                        ?? counters.batchesServed.load(ordering: .relaxed),
                     ringCapacity: ringCapacity, ringOccupied: ringOccupied, preloadBytes: preloadBytes, preloadBudgetBytes: preloadBudget,
                     uptimeMilliseconds: (monotonicNanoseconds() - counters.startedAt) / 1_000_000,
                     stages: stream.stages, datasets: datasets, clients: clients)
    }

    /// The open connections that hold a session (and are not closing), in connection order.
    func openSessions() -> [(connection: Connection, session: Session)] {
        let open = connections.withLock { Array($0.values) }.sorted { $0.id < $1.id }
        return open.compactMap { connection in
            guard let session = connection.sessionInfo.withLock({ $0 }), !connection.isClosing else { return nil }
            return (connection, session)
        }
    }
}
