import ArgumentParser
import TokenfeedServer

extension TokenfeedDaemon {
    /// Checks the command line's values, then merges the config file (`--config`) into it: every
    /// option the command line did not give takes the file's value (the command line wins,
    /// docs/OPERATIONS.md "Options"); then checks what needs both (the required curriculum and socket,
    /// `--on-corrupt quarantine` with `--verify-shards`, a non-loopback `--metrics-listen`).
    ///
    /// The file's values were checked when it was parsed, each problem named with its file:line:column;
    /// the command line's are checked here against the same ranges. Every failure is a usage error
    /// (exit 2). Called by the parser before `run()`, and again on SIGHUP (`reload`), which re-reads the
    /// file. Starts no thread (`run()` blocks the daemon's signals first).
    mutating func validate() throws {
        try checkRanges()
        var file = ConfigFile()
        if let config {
            do { file = try ConfigFile.load(path: config) } catch { throw ValidationError(error.description) }
        }
        merge(file)
        guard curriculum != nil else { throw ValidationError("missing --curriculum (or `curriculum:` in the config file)") }
        guard socket != nil else { throw ValidationError("missing --socket (or `socket:` in the config file)") }
        if onCorrupt == .quarantine {
            // Quarantine is decided from a full verification at startup, so that every node quarantines the same shards.
            guard verifyShards != ShardVerificationMode.none else {
                throw ValidationError("--on-corrupt quarantine verifies every shard at startup; it cannot be combined with --verify-shards none")
            }
            verifyShards = .startup
        }
        if let address = metricsListen, !address.isLoopback, !metricsListenAny {
            throw ValidationError("--metrics-listen \(address): not a loopback address; the metrics endpoint has no authentication, "
                                  + "so serving it beyond this host needs --metrics-listen-any (or metrics_listen_any: true)")
        }
    }

    /// The config file's value of every option the command line left out.
    private mutating func merge(_ file: ConfigFile) {
        curriculum = curriculum ?? file.curriculumPath
        dataRoot = dataRoot ?? file.dataRoot
        socket = socket ?? file.socketPath
        socketMode = socketMode ?? file.socketMode
        stateDir = stateDir ?? file.stateDirectory
        preloadBytes = preloadBytes ?? file.preloadBytes
        ringSlots = ringSlots ?? file.ringSlots
        logLevel = logLevel ?? file.logLevel
        logFormat = logFormat ?? file.logFormat
        onCorrupt = onCorrupt ?? file.onCorrupt
        verifyShards = verifyShards ?? file.verifyShards
        order = order ?? file.order
        logFile = logFile ?? file.logFile
        allowUsers = allowUsers ?? file.allowUsers
        allowGroups = allowGroups ?? file.allowGroups
        maxConnections = maxConnections ?? file.maxConnections
        handshakeTimeout = handshakeTimeout ?? file.handshakeTimeoutSeconds
        sessionMemory = sessionMemory ?? file.sessionMemoryBytes
        totalMemory = totalMemory ?? file.totalMemoryBytes
        outboxBytes = outboxBytes ?? file.outboxBytes
        sessionRate = sessionRate ?? file.sessionSetupsPerSecond
        sessionBurst = sessionBurst ?? file.sessionSetupBurst
        metricsListen = metricsListen ?? file.metricsListen
        metricsListenAny = metricsListenAny || (file.metricsListenAny ?? false)
    }

    /// The command line's numbers and sizes against the ranges the config file's are held to.
    private func checkRanges() throws {
        try Self.check(ringSlots, in: ServerOptions.ringSlotsRange, "--ring-slots: expected \(ServerOptions.ringSlotsRange)")
        try Self.check(maxConnections, in: ServingLimits.maxConnectionsRange, "--max-connections: expected \(ServingLimits.maxConnectionsRange)")
        try Self.check(handshakeTimeout, in: ServingLimits.handshakeTimeoutRange, "--handshake-timeout: expected \(ServingLimits.handshakeTimeoutRange) seconds")
        try Self.check(sessionRate, in: ServingLimits.sessionSetupRange,
                       "--session-rate: expected \(ServingLimits.sessionSetupRange) set-ups per second (0: no limit)")
        try Self.check(sessionBurst, in: ServingLimits.sessionBurstRange, "--session-burst: expected \(ServingLimits.sessionBurstRange) set-ups")
        try Self.check(maxOpenShards, in: 1...Int.max, "--max-open-shards: expected at least 1")
        let positive = ByteCount(1)...ByteCount(Int.max)
        try Self.check(preloadBytes, in: positive, "--preload-bytes: expected a positive byte count")
        try Self.check(sessionMemory, in: positive, "--session-memory: expected a positive byte count")
        try Self.check(totalMemory, in: positive, "--total-memory: expected a positive byte count")
        let outbox = ByteCount(ServingLimits.outboxBytesRange.lowerBound)...ByteCount(ServingLimits.outboxBytesRange.upperBound)
        try Self.check(outboxBytes, in: outbox, "--outbox-bytes: expected a byte count in \(outbox)")
    }

    /// Throws `ValidationError("EXPECTATION, got VALUE")` when `value` is given and outside `range`.
    private static func check<Value: Comparable & CustomStringConvertible>(_ value: Value?, in range: ClosedRange<Value>, _ expectation: String) throws {
        if let value, !range.contains(value) { throw ValidationError("\(expectation), got \(value)") }
    }
}
