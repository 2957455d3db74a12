#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ArgumentParser
import CommandLineSupport
import Dispatch
import Logging
import TokenfeedCurriculum
import TokenfeedProtocol
import TokenfeedServer
import TokenfeedShards
import TokenfeedSystem

/// `tokenfeedd`: the tokenfeed daemon (docs/OPERATIONS.md).
struct TokenfeedDaemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenfeedd",
        abstract: "Serve a curriculum's batches to trainer processes over a Unix socket.",
        discussion: """
            Options come from the command line and from a YAML config file (--config); the command line wins. \
            The curriculum and every shard header are read before the socket is opened: bad input exits with status 1 \
            and a message naming the file and line:column, or the shard and frame. --verify-shards startup checks every \
            frame of every shard first; --on-corrupt quarantine (which implies it) serves without the corrupt shards, \
            the same way on every node, and records them in the stream's fingerprint and cursors. SIGTERM and SIGINT stop accepting, \
            send every client a shutting_down error, write the state directory, remove the socket file and exit 0. \
            SIGHUP re-opens --log-file and re-reads log_level, log_format, allow_users and allow_groups (docs/OPERATIONS.md, "Signals").
            """,
        version: ReleaseVersion.line(for: "tokenfeedd"))

    @Option(help: "YAML config file with any of: curriculum, data_root, socket, socket_mode, state_dir, preload_bytes, ring_slots, log_level, log_format, on_corrupt, verify_shards, log_file, allow_users, allow_groups, max_connections, handshake_timeout, session_memory, total_memory, outbox_bytes, metrics_listen, metrics_listen_any.")
    var config: String?

    @Option(help: "The curriculum file.")
    var curriculum: String?

    @Option(help: "Folder holding the dataset folders.")
    var dataRoot: String?

    @Option(help: "Unix socket path to listen on (unused when systemd passes a socket).")
    var socket: String?

    @Option(help: "Octal permission mode of the socket file (default 0660).")
    var socketMode: String?

    @Option(help: "Folder for stats.json and each job's ranks' last cursors (jobs/<job>/rank-R.cursor).")
    var stateDir: String?

    @Option(help: "Byte budget of the frame cache all sessions share, e.g. 268435456 or 256MiB (default 256MiB).")
    var preloadBytes: String?

    @Option(help: "Batches each session's packer runs ahead (default 8).")
    var ringSlots: Int?

    @Option(help: "trace, debug, info, notice, warning, error or critical (default info).")
    var logLevel: String?

    @Option(help: "Log lines as text (message, then key=value fields) or json (one object a line) (default text).")
    var logFormat: String?

    @Option(help: "Corrupt shard data: fail (exit at startup, data_error while serving) or quarantine (verify at startup, serve without the corrupt shards) (default fail).")
    var onCorrupt: String?

    @Option(help: "Shard checks before listening: none (metadata checksums) or startup (every frame of every shard) (default none; startup under --on-corrupt quarantine).")
    var verifyShards: String?

    @Option(help: "The order sequences are drawn in: quota (tokenfeed's, the default) or nanotron (nanotron's samples, bit for bit; docs/CURRICULUM.md, \"Orders\").")
    var order: String?

    @Option(help: "Append the log to this file instead of standard error; SIGHUP re-opens it (for logrotate).")
    var logFile: String?

    @Option(help: "Further users allowed to connect, comma-separated names or uids (root and the daemon's user always may).")
    var allowUsers: String?

    @Option(help: "Groups allowed to connect, comma-separated names or gids (default: the daemon's group).")
    var allowGroups: String?

    @Option(help: "Open connections at most; the next gets a busy error (default 256).")
    var maxConnections: Int?

    @Option(help: "Seconds a connection may take to send its Hello or StatsRequest (default 10).")
    var handshakeTimeout: Int?

    @Option(help: "Bytes one session's ring may take, e.g. 2GiB (default 2GiB).")
    var sessionMemory: String?

    @Option(help: "Bytes all sessions together may take, e.g. 16GiB (default 16GiB).")
    var totalMemory: String?

    @Option(help: "Sessions one client process may set up per second once it has used its burst; more get a busy error (0: no limit; default 16).")
    var sessionRate: Int?

    @Option(help: "Sessions one client process may set up at once before --session-rate applies (default 64).")
    var sessionBurst: Int?

    @Option(help: "Bytes of unread answers queued for one client before the daemon stops reading its requests, 64KiB...1GiB (default 4MiB).")
    var outboxBytes: String?

    @Option(help: "Serve Prometheus metrics (GET /metrics) over HTTP on ADDR:PORT, e.g. 127.0.0.1:9464 or [::1]:9464 (default: off). Loopback only unless --metrics-listen-any.")
    var metricsListen: String?

    @Flag(help: "Allow --metrics-listen on an address other hosts can reach (e.g. 0.0.0.0:9464); the endpoint has no authentication.")
    var metricsListenAny = false

    @Option(help: "Shard files kept open at most (least recently used closed first; default 256). Keep it well under the descriptor limit (LimitNOFILE) minus --max-connections.")
    var maxOpenShards: Int = 256

    func run() throws {
        DaemonSignals.block()
        guard maxOpenShards >= 1 else {
            printError("tokenfeedd: --max-open-shards must be at least 1")
            throw ExitCode(ExitStatus.usage)
        }
        DescriptorCache.shared.setCapacity(maxOpenShards)
        let options: ServerOptions
        do { options = try resolveOptions() } catch let error as ValidationError {
            printError("tokenfeedd: \(error.message)")
            StartupFailureAnswer.answerPending(reason: error.message)
            throw ExitCode(ExitStatus.usage)
        }
        let log: DaemonLog
        do { log = try DaemonLog(path: options.logFile, level: options.logLevel, format: options.logFormat) } catch {
            printError("tokenfeedd: \(error)")
            throw ExitCode(1)
        }
        LoggingSystem.bootstrap { label in log.handler(label: label) }
        let logger = Logger(label: "tokenfeedd")
        signal(SIGPIPE, SIG_IGN)
        let server: Server
        do { server = try Server.open(options: options, logger: logger) } catch {
            printError("tokenfeedd: \(error)")
            StartupFailureAnswer.answerPending(reason: "\(error)")
            throw ExitCode(1)
        }
        do { try server.start() } catch {
            printError("tokenfeedd: \(error)")
            throw ExitCode(1)
        }
        // Signals are blocked in every thread (DaemonSignals.block() ran first), so one sent at any
        // moment — even as soon as the socket appears — waits, pending, for the main thread to take it.
        DaemonSignals.wait { number in
            logger.info("signal received", metadata: ["signal": "\(DaemonSignals.name(number))"])
            if number == SIGHUP {
                reload(log: log, server: server, logger: logger)
                return
            }
            server.shutdown()
            LibC.exit(0)
        }
    }

    /// SIGHUP: re-opens the log file, re-reads the config file and the command line and applies the
    /// log level and who may connect. Everything else (curriculum, data, socket, state directory,
    /// budgets, running sessions) stays as it was; a config that no longer parses changes nothing.
    private func reload(log: DaemonLog, server: Server, logger: Logger) {
        do { try log.reopen() } catch { logger.error("cannot re-open the log file; still writing to the old one", metadata: ["error": "\(error)"]) }
        let options: ServerOptions
        do { options = try resolveOptions() } catch {
            logger.error("reload: the configuration is invalid; nothing changed", metadata: ["error": "\((error as? ValidationError)?.message ?? "\(error)")"])
            return
        }
        log.level = options.logLevel
        log.format = options.logFormat
        server.reload(peerPolicy: options.peerPolicy)
        logger.notice("reloaded", metadata: [
            "log_level": "\(options.logLevel)", "log_format": "\(options.logFormat.rawValue)", "allow_users": "\(options.peerPolicy.users)", "allow_groups": "\(options.peerPolicy.groups)",
        ])
    }

    /// The options from the config file overlaid with the command line.
    /// The serving limits from the command line, else the config file, else the defaults.
    private func resolveLimits(file: ConfigFile, into limits: inout ServingLimits) throws {
        if let n = maxConnections {
            guard n >= 1, n <= 1 << 20 else { throw ValidationError("--max-connections: expected 1...1048576, got \(n)") }
            limits.maxConnections = n
        } else if let n = file.maxConnections { limits.maxConnections = n }
        if let n = handshakeTimeout {
            guard n >= 1, n <= 86_400 else { throw ValidationError("--handshake-timeout: expected 1...86400 seconds, got \(n)") }
            limits.handshakeTimeoutSeconds = n
        } else if let n = file.handshakeTimeoutSeconds { limits.handshakeTimeoutSeconds = n }
        if let text = sessionMemory {
            guard let bytes = ConfigFile.parseByteCount(text), bytes > 0 else { throw ValidationError("--session-memory: expected a positive byte count, got \(text)") }
            limits.sessionMemoryBytes = bytes
        } else if let bytes = file.sessionMemoryBytes { limits.sessionMemoryBytes = bytes }
        if let text = totalMemory {
            guard let bytes = ConfigFile.parseByteCount(text), bytes > 0 else { throw ValidationError("--total-memory: expected a positive byte count, got \(text)") }
            limits.totalMemoryBytes = bytes
        } else if let bytes = file.totalMemoryBytes { limits.totalMemoryBytes = bytes }
        if let text = outboxBytes {
            guard let bytes = ConfigFile.parseByteCount(text), ServingLimits.outboxBytesRange.contains(bytes) else {
                throw ValidationError("--outbox-bytes: expected a byte count in 64KiB...1GiB, got \(text)")
            }
            limits.outboxBytes = bytes
        } else if let bytes = file.outboxBytes { limits.outboxBytes = bytes }
        if let n = sessionRate {
            guard ServingLimits.sessionSetupRange.contains(n) else { throw ValidationError("--session-rate: expected 0...1000000 set-ups per second (0: no limit), got \(n)") }
            limits.sessionSetupsPerSecond = n
        } else if let n = file.sessionSetupsPerSecond { limits.sessionSetupsPerSecond = n }
        if let n = sessionBurst {
            guard n >= 1, ServingLimits.sessionSetupRange.contains(n) else { throw ValidationError("--session-burst: expected 1...1000000 set-ups, got \(n)") }
            limits.sessionSetupBurst = n
        } else if let n = file.sessionSetupBurst { limits.sessionSetupBurst = n }
    }

    private func resolveOptions() throws -> ServerOptions {
        var file = ConfigFile()
        if let config {
            do { file = try ConfigFile.load(path: config) } catch { throw ValidationError(error.description) }
        }
        guard let curriculumPath = curriculum ?? file.curriculumPath else {
            throw ValidationError("missing --curriculum (or `curriculum:` in the config file)")
        }
        guard let socketPath = socket ?? file.socketPath else {
            throw ValidationError("missing --socket (or `socket:` in the config file)")
        }
        var options = ServerOptions(curriculumPath: curriculumPath, dataRoot: dataRoot ?? file.dataRoot, socketPath: socketPath)
        if let text = socketMode {
            guard let mode = ConfigFile.parseMode(text) else { throw ValidationError("--socket-mode: expected an octal mode like 0660, got \(text)") }
            options.socketMode = mode
        } else if let mode = file.socketMode { options.socketMode = mode }
        options.stateDirectory = stateDir ?? file.stateDirectory
        if let text = preloadBytes {
            guard let bytes = ConfigFile.parseByteCount(text), bytes > 0 else { throw ValidationError("--preload-bytes: expected a positive byte count, got \(text)") }
            options.preloadBytes = bytes
        } else if let bytes = file.preloadBytes { options.preloadBytes = bytes }
        if let ringSlots {
            guard ringSlots >= 2, ringSlots <= 1024 else { throw ValidationError("--ring-slots: expected 2...1024, got \(ringSlots)") }
            options.ringSlots = ringSlots
        } else if let slots = file.ringSlots { options.ringSlots = slots }
        try resolveLimits(file: file, into: &options.limits)
        if let text = logLevel {
            guard let level = Logger.Level(rawValue: text) else { throw ValidationError("--log-level: unknown level \(text)") }
            options.logLevel = level
        } else if let level = file.logLevel { options.logLevel = level }
        if let text = logFormat {
            guard let format = LogFormat(rawValue: text) else { throw ValidationError("--log-format: expected text or json, got \(text)") }
            options.logFormat = format
        } else if let format = file.logFormat { options.logFormat = format }
        if let text = onCorrupt {
            guard let policy = CorruptDataPolicy(rawValue: text) else { throw ValidationError("--on-corrupt: expected fail or quarantine, got \(text)") }
            options.onCorrupt = policy
        } else if let policy = file.onCorrupt { options.onCorrupt = policy }
        let verification: ShardVerificationMode?
        if let text = verifyShards {
            guard let mode = ShardVerificationMode(rawValue: text) else { throw ValidationError("--verify-shards: expected none or startup, got \(text)") }
            verification = mode
        } else { verification = file.verifyShards }
        options.logFile = logFile ?? file.logFile
        if let text = order {
            guard let value = StreamOrder(rawValue: text) else { throw ValidationError("--order: expected quota or nanotron, got \(text)") }
            options.order = value
        } else if let value = file.order { options.order = value }
        if let text = metricsListen {
            do throws(MetricsAddressError) { options.metricsListen = try MetricsAddress(parsing: text) } catch {
                throw ValidationError("--metrics-listen: \(error)")
            }
        } else { options.metricsListen = file.metricsListen }
        options.metricsListenAny = metricsListenAny || (file.metricsListenAny ?? false)
        if let address = options.metricsListen, !address.isLoopback, !options.metricsListenAny {
            throw ValidationError("--metrics-listen \(address): not a loopback address; the metrics endpoint has no authentication, "
                                  + "so serving it beyond this host needs --metrics-listen-any (or metrics_listen_any: true)")
        }
        do throws(PeerPolicyError) {
            if let list = allowUsers { options.peerPolicy.users = try PeerPolicy.userIDs(list) } else if let users = file.allowUsers { options.peerPolicy.users = users }
            if let list = allowGroups { options.peerPolicy.groups = try PeerPolicy.groupIDs(list) } else if let groups = file.allowGroups { options.peerPolicy.groups = groups }
        } catch { throw ValidationError("--allow-users/--allow-groups: \(error)") }
        if options.onCorrupt == .quarantine {
            // Quarantine is decided from a full verification at startup, so that every node quarantines the same shards.
            guard verification != ShardVerificationMode.none else {
                throw ValidationError("--on-corrupt quarantine verifies every shard at startup; it cannot be combined with --verify-shards none")
            }
            options.verifyShards = .startup
        } else if let verification { options.verifyShards = verification }
        return options
    }
}

func printError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

ExitStatus.main(TokenfeedDaemon.self)

/// The daemon's signal sources, alive for the whole process (written once by `main` before
/// `dispatchMain`, never read).
