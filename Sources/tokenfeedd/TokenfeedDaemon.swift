#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ArgumentParser
import CommandLineSupport
import Logging
import TokenfeedCurriculum
import TokenfeedProtocol
import TokenfeedServer
import TokenfeedShards

/// `tokenfeedd`: the tokenfeed daemon (docs/OPERATIONS.md).
///
/// Every option is typed (`ByteCount`, `FileMode`, the policy enums, `MetricsAddress`: their
/// `ExpressibleByArgument` conformances are in OptionArguments.swift), so a malformed value is a usage
/// error from the parser. `validate()` (TokenfeedDaemon+Validate.swift) then fills the options the
/// command line left out from the config file, checks ranges and combinations, and `run()` serves
/// with the result.
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

    /// How a size is written (``ByteCount``), in the help of every size option — and so in its usage error.
    static let sizeForms = "a size is bytes, or with a K/KiB, M/MiB or G/GiB suffix (powers of 1024): 268435456, 256MiB, 256M"

    @Option(help: "YAML config file with any of: \(ConfigFile.keys.joined(separator: ", ")).")
    var config: String?

    @Option(help: "The curriculum file.")
    var curriculum: String?

    @Option(help: "Folder holding the dataset folders.")
    var dataRoot: String?

    @Option(help: "Unix socket path to listen on (unused when systemd passes a socket).")
    var socket: String?

    @Option(help: ArgumentHelp("Octal permission mode of the socket file: 660, 0660 or 0o660, at most 0777 (default 0660).", valueName: "mode"))
    var socketMode: FileMode?

    @Option(help: "Folder for stats.json and each job's ranks' last cursors (jobs/<job>/rank-R.cursor).")
    var stateDir: String?

    @Option(help: ArgumentHelp("Byte budget of the frame cache all sessions share (default 256MiB); \(Self.sizeForms).", valueName: "size"))
    var preloadBytes: ByteCount?

    @Option(help: ArgumentHelp("Batches each session's packer runs ahead, \(ServerOptions.ringSlotsRange) (default 8).", valueName: "n"))
    var ringSlots: Int?

    @Option(help: "Log level (default info).")
    var logLevel: Logger.Level?

    @Option(help: "Log lines as text (message, then key=value fields) or json (one object a line) (default text).")
    var logFormat: LogFormat?

    @Option(help: "Corrupt shard data: fail (exit at startup, data_error while serving) or quarantine (verify at startup, serve without the corrupt shards) (default fail).")
    var onCorrupt: CorruptDataPolicy?

    @Option(help: "Shard checks before listening: none (metadata checksums) or startup (every frame of every shard) (default none; startup under --on-corrupt quarantine).")
    var verifyShards: ShardVerificationMode?

    @Option(help: "The order sequences are drawn in: quota (tokenfeed's, the default) or nanotron (nanotron's samples, bit for bit; docs/CURRICULUM.md, \"Orders\").")
    var order: StreamOrder?

    @Option(help: "Append the log to this file instead of standard error; SIGHUP re-opens it (for logrotate).")
    var logFile: String?

    /// Resolved through the user database when parsed (an unknown name is a usage error naming it).
    @Option(help: ArgumentHelp("Further users allowed to connect, comma-separated names or uids (root and the daemon's user always may).", valueName: "users"),
            transform: { list in try PeerPolicy.userIDs(list) })
    var allowUsers: [UInt32]?

    @Option(help: ArgumentHelp("Groups allowed to connect, comma-separated names or gids (default: the daemon's group).", valueName: "groups"),
            transform: { list in try PeerPolicy.groupIDs(list) })
    var allowGroups: [UInt32]?

    @Option(help: ArgumentHelp("Open connections at most, \(ServingLimits.maxConnectionsRange); the next gets a busy error (default 256).", valueName: "n"))
    var maxConnections: Int?

    @Option(help: ArgumentHelp("Seconds a connection may take to send its Hello or StatsRequest, \(ServingLimits.handshakeTimeoutRange) (default 10).", valueName: "seconds"))
    var handshakeTimeout: Int?

    @Option(help: ArgumentHelp("Bytes one session's ring may take (default 2GiB); \(Self.sizeForms).", valueName: "size"))
    var sessionMemory: ByteCount?

    @Option(help: ArgumentHelp("Bytes all sessions together may take (default 16GiB); \(Self.sizeForms).", valueName: "size"))
    var totalMemory: ByteCount?

    @Option(help: ArgumentHelp("Sessions one client process may set up per second once it has used its burst; more get a busy error (0: no limit; default 16).", valueName: "n"))
    var sessionRate: Int?

    @Option(help: ArgumentHelp("Sessions one client process may set up at once before --session-rate applies (default 64).", valueName: "n"))
    var sessionBurst: Int?

    @Option(help: ArgumentHelp("Bytes of unread answers queued for one client before the daemon stops reading its requests, 64KiB...1GiB (default 4MiB); \(Self.sizeForms).",
                         valueName: "size"))
    var outboxBytes: ByteCount?

    @Option(help: ArgumentHelp("Serve Prometheus metrics (GET /metrics) over HTTP on ADDR:PORT, e.g. 127.0.0.1:9464 or [::1]:9464 (default: off). Loopback only unless --metrics-listen-any.",
                               valueName: "addr:port"))
    var metricsListen: MetricsAddress?

    @Flag(help: "Allow --metrics-listen on an address other hosts can reach (e.g. 0.0.0.0:9464); the endpoint has no authentication.")
    var metricsListenAny = false

    @Option(help: ArgumentHelp("Shard files kept open at most (least recently used closed first; default 256). Keep it well under the descriptor limit (LimitNOFILE) minus --max-connections.",
                               valueName: "n"))
    var maxOpenShards: Int = 256

    func run() throws {
        DaemonSignals.block()
        DescriptorCache.shared.setCapacity(maxOpenShards)
        let options = serverOptions
        let log: DaemonLog
        do throws(SystemCallError) { log = try DaemonLog(path: options.logFile, level: options.logLevel, format: options.logFormat) } catch {
            throw StartupFailure.exit(ServerStartupError(.logFile, error))
        }
        LoggingSystem.bootstrap { label in log.handler(label: label) }
        let logger = Logger(label: "tokenfeedd")
        signal(SIGPIPE, SIG_IGN)
        let server: Server
        do throws(ServerStartupError) {
            server = try Server.open(options: options, logger: logger)
            try server.start()
        } catch {
            throw StartupFailure.exit(error)
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
            Glibc.exit(0)
        }
    }

    /// SIGHUP: re-opens the log file, parses the command line again (re-reading the config file,
    /// merged as at startup) and applies the log level and format and who may connect. Everything
    /// else (curriculum, data, socket, state directory, budgets, running sessions) stays as it was; a
    /// config that no longer parses changes nothing.
    private func reload(log: DaemonLog, server: Server, logger: Logger) {
        do { try log.reopen() } catch { logger.error("cannot re-open the log file; still writing to the old one", metadata: ["error": "\(error)"]) }
        let options: ServerOptions
        do {
            let reparsed = try Self.parseAsRoot(Array(CommandLine.arguments.dropFirst()))
            guard let daemon = reparsed as? TokenfeedDaemon else { return }
            options = daemon.serverOptions
        } catch {
            logger.error("reload: the configuration is invalid; nothing changed", metadata: ["error": "\(Self.message(for: error))"])
            return
        }
        log.level = options.logLevel
        log.format = options.logFormat
        server.reload(peerPolicy: options.peerPolicy)
        logger.notice("reloaded", metadata: [
            "log_level": "\(options.logLevel)", "log_format": "\(options.logFormat.rawValue)", "allow_users": "\(options.peerPolicy.users)", "allow_groups": "\(options.peerPolicy.groups)",
        ])
    }

    /// The options to serve with, from this command once `validate()` has merged the config file
    /// into it: what is still unset takes the defaults of ``ServerOptions`` and ``ServingLimits``.
    /// - Precondition: `validate()` succeeded (the curriculum and socket are set).
    var serverOptions: ServerOptions {
        guard let curriculum, let socket else { preconditionFailure("validate() requires --curriculum and --socket") }
        var options = ServerOptions(curriculumPath: curriculum, dataRoot: dataRoot, socketPath: socket)
        if let socketMode { options.socketMode = socketMode.rawValue }
        options.stateDirectory = stateDir
        if let preloadBytes { options.preloadBytes = preloadBytes.bytes }
        if let ringSlots { options.ringSlots = ringSlots }
        if let logLevel { options.logLevel = logLevel }
        if let logFormat { options.logFormat = logFormat }
        if let onCorrupt { options.onCorrupt = onCorrupt }
        if let verifyShards { options.verifyShards = verifyShards }
        if let order { options.order = order }
        options.logFile = logFile
        if let allowUsers { options.peerPolicy.users = allowUsers }
        if let allowGroups { options.peerPolicy.groups = allowGroups }
        options.metricsListen = metricsListen
        options.metricsListenAny = metricsListenAny
        if let maxConnections { options.limits.maxConnections = maxConnections }
        if let handshakeTimeout { options.limits.handshakeTimeoutSeconds = handshakeTimeout }
        if let sessionMemory { options.limits.sessionMemoryBytes = sessionMemory.bytes }
        if let totalMemory { options.limits.totalMemoryBytes = totalMemory.bytes }
        if let outboxBytes { options.limits.outboxBytes = outboxBytes.bytes }
        if let sessionRate { options.limits.sessionSetupsPerSecond = sessionRate }
        if let sessionBurst { options.limits.sessionSetupBurst = sessionBurst }
        return options
    }
}
