import Logging
import TokenfeedCurriculum

/// The settings of a `tokenfeedd` YAML config file (`--config`); every key optional, the command
/// line wins over each; relative paths are relative to the config file's folder (docs/OPERATIONS.md, "Options").
///
/// ```yaml
/// curriculum: /etc/tokenfeed/smollm3.yaml
/// data_root: /data/tokens
/// socket: /run/tokenfeed/tokenfeed.sock
/// socket_mode: "0660"
/// state_dir: /var/lib/tokenfeed
/// preload_bytes: 1GiB        # or a plain number of bytes; KiB, MiB, GiB, K, M, G suffixes
/// ring_slots: 8
/// log_level: info            # trace, debug, info, notice, warning, error, critical
/// log_format: text           # or json
/// on_corrupt: fail           # or quarantine
/// verify_shards: none        # or startup
/// order: quota               # or nanotron (nanotron's sample stream, bit for bit)
/// log_file: /var/log/tokenfeed/tokenfeedd.log   # default: standard error; re-opened on SIGHUP
/// allow_users: [alice, 1001] # or "alice, 1001"; root and the daemon's user are always allowed
/// allow_groups: [trainers]   # default: the daemon's group
/// metrics_listen: 127.0.0.1:9464   # GET /metrics; default: none
/// metrics_listen_any: false  # true allows an address other hosts can reach
/// ```
public struct ConfigFile: Sendable, Hashable {
    public var curriculumPath: String?
    public var dataRoot: String?
    public var socketPath: String?
    public var socketMode: FileMode?
    public var stateDirectory: String?
    public var preloadBytes: ByteCount?
    public var ringSlots: Int?
    public var logLevel: Logger.Level?
    public var logFormat: LogFormat?
    public var onCorrupt: CorruptDataPolicy?
    public var verifyShards: ShardVerificationMode?
    public var order: StreamOrder?
    public var logFile: String?
    public var allowUsers: [UInt32]?
    public var allowGroups: [UInt32]?
    /// `max_connections`, `handshake_timeout`, `session_memory`, `total_memory`, `outbox_bytes`, `session_rate`, `session_burst`.
    public var maxConnections: Int?
    public var handshakeTimeoutSeconds: Int?
    public var sessionMemoryBytes: ByteCount?
    public var totalMemoryBytes: ByteCount?
    public var outboxBytes: ByteCount?
    public var sessionSetupsPerSecond: Int?
    public var sessionSetupBurst: Int?
    /// `metrics_listen`, `metrics_listen_any`.
    public var metricsListen: MetricsAddress?
    public var metricsListenAny: Bool?

    /// An empty config (nothing set).
    public init() {}

    /// The keys a config file may hold.
    public static let keys = ["curriculum", "data_root", "socket", "socket_mode", "state_dir", "preload_bytes",
                              "ring_slots", "log_level", "log_format", "on_corrupt", "verify_shards",
                              "log_file", "allow_users", "allow_groups",
                              "max_connections", "handshake_timeout", "session_memory", "total_memory", "outbox_bytes",
                              "session_rate", "session_burst", "order", "metrics_listen", "metrics_listen_any"]

    /// Reads and validates a config file.
    /// - Throws: `CurriculumErrors` whose diagnostics name the file, line and column of every bad
    ///   key or value (or the file when it cannot be read).
    public static func load(path: String) throws(CurriculumErrors) -> ConfigFile {
        let text: String
        do { text = try readTextFile(path) } catch {
            throw CurriculumErrors([CurriculumError(SourceLocation(file: path, line: 0, column: 0), "cannot read the config file: \(error)")])
        }
        return try parse(text: text, path: path).resolvingPaths(against: path)
    }

    /// This config with its relative paths (`curriculum`, `data_root`, `socket`, `state_dir`,
    /// `log_file`) taken relative to the folder of the config file at `configPath`, not to the working
    /// directory (which is `/` under systemd).
    public func resolvingPaths(against configPath: String) -> ConfigFile {
        guard let slash = configPath.lastIndex(of: "/") else { return self }   // the config is in the working directory
        let folder = String(configPath[...slash])
        func resolve(_ path: String?) -> String? { path.map { $0.hasPrefix("/") || $0.isEmpty ? $0 : folder + $0 } }
        var config = self
        config.curriculumPath = resolve(curriculumPath)
        config.dataRoot = resolve(dataRoot)
        config.socketPath = resolve(socketPath)
        config.stateDirectory = resolve(stateDirectory)
        config.logFile = resolve(logFile)
        return config
    }

    /// Parses config text (`path` names it in diagnostics).
    /// - Throws: `CurriculumErrors` naming line and column of every problem.
    public static func parse(text: String, path: String) throws(CurriculumErrors) -> ConfigFile {
        var config = ConfigFile()
        guard let root = try YAMLParser.parse(text, file: path), !root.isNull else { return config }
        guard case .mapping(let entries, _) = root else {
            throw CurriculumErrors([CurriculumError(root.location, "a config file is a mapping of settings, got \(root.kindDescription)")])
        }
        var problems: [CurriculumError] = []
        for entry in entries {
            let value = entry.value
            func fail(_ message: String) { problems.append(CurriculumError(value.location, "\(entry.key): \(message)")) }
            if entry.key == "allow_users" || entry.key == "allow_groups" {
                // A list of names or ids, as a YAML list or one comma-separated string.
                var names: [String] = []
                if case .sequence(let items, _) = value {
                    for item in items { if let name = item.scalarText { names.append(name) } else { fail("expected a user or group name or id, got \(item.kindDescription)") } }
                } else if let text = value.scalarText, !value.isNull { names = [text] } else { fail("expected a list of names or ids, got \(value.kindDescription)") }
                let list = names.joined(separator: ",")
                do throws(PeerPolicyError) {
                    if entry.key == "allow_users" { config.allowUsers = try PeerPolicy.userIDs(list) } else { config.allowGroups = try PeerPolicy.groupIDs(list) }
                } catch { fail(error.description) }
                continue
            }
            guard let text = value.scalarText, !value.isNull else {
                fail("expected a value, got \(value.kindDescription)")
                continue
            }
            switch entry.key {
            case "curriculum": config.curriculumPath = text
            case "data_root": config.dataRoot = text
            case "socket": config.socketPath = text
            case "state_dir": config.stateDirectory = text
            case "log_file": config.logFile = text
            case "socket_mode":
                if let mode = FileMode(text) { config.socketMode = mode } else { fail("expected an octal mode like \"0660\", got \"\(text)\"") }
            case "preload_bytes":
                if let bytes = ByteCount(text), bytes.bytes > 0 { config.preloadBytes = bytes } else { fail("expected a positive byte count like 268435456 or 256MiB, got \"\(text)\"") }
            case "ring_slots":
                if let n = Int(text), ServerOptions.ringSlotsRange.contains(n) { config.ringSlots = n } else {
                    fail("expected a number of slots in \(ServerOptions.ringSlotsRange), got \"\(text)\"")
                }
            case "log_level":
                if let level = Logger.Level(rawValue: text) { config.logLevel = level } else {
                    fail("expected one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(text)\"")
                }
            case "log_format":
                if let format = LogFormat(rawValue: text) { config.logFormat = format } else {
                    fail("expected one of \(LogFormat.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(text)\"")
                }
            case "on_corrupt":
                if let policy = CorruptDataPolicy(rawValue: text) { config.onCorrupt = policy } else {
                    fail("expected one of \(CorruptDataPolicy.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(text)\"")
                }
            case "verify_shards":
                if let mode = ShardVerificationMode(rawValue: text) { config.verifyShards = mode } else {
                    fail("expected one of \(ShardVerificationMode.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(text)\"")
                }
            case "order":
                if let order = StreamOrder(rawValue: text) { config.order = order } else {
                    fail("expected one of \(StreamOrder.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(text)\"")
                }
            case "max_connections":
                if let n = Int(text), ServingLimits.maxConnectionsRange.contains(n) { config.maxConnections = n } else {
                    fail("expected a number of connections in \(ServingLimits.maxConnectionsRange), got \"\(text)\"")
                }
            case "handshake_timeout":
                if let n = Int(text), ServingLimits.handshakeTimeoutRange.contains(n) { config.handshakeTimeoutSeconds = n } else {
                    fail("expected seconds in \(ServingLimits.handshakeTimeoutRange), got \"\(text)\"")
                }
            case "session_memory":
                if let bytes = ByteCount(text), bytes.bytes > 0 { config.sessionMemoryBytes = bytes } else { fail("expected a positive byte count like 2GiB, got \"\(text)\"") }
            case "total_memory":
                if let bytes = ByteCount(text), bytes.bytes > 0 { config.totalMemoryBytes = bytes } else { fail("expected a positive byte count like 16GiB, got \"\(text)\"") }
            case "outbox_bytes":
                if let bytes = ByteCount(text), ServingLimits.outboxBytesRange.contains(bytes.bytes) { config.outboxBytes = bytes } else {
                    fail("expected a byte count in 64KiB...1GiB like 4MiB, got \"\(text)\"")
                }
            case "session_rate":
                if let n = Int(text), ServingLimits.sessionSetupRange.contains(n) { config.sessionSetupsPerSecond = n } else {
                    fail("expected session set-ups per second per client process in 0...1000000 (0: no limit), got \"\(text)\"")
                }
            case "session_burst":
                if let n = Int(text), ServingLimits.sessionBurstRange.contains(n) { config.sessionSetupBurst = n } else {
                    fail("expected a number of session set-ups in \(ServingLimits.sessionBurstRange), got \"\(text)\"")
                }
            case "metrics_listen":
                do throws(MetricsAddressError) { config.metricsListen = try MetricsAddress(parsing: text) } catch { fail(error.description) }
            case "metrics_listen_any":
                switch text {
                case "true", "yes", "on": config.metricsListenAny = true
                case "false", "no", "off": config.metricsListenAny = false
                default: fail("expected true or false, got \"\(text)\"")
                }
            default:
                let hint = closestCandidate(to: entry.key, among: keys).map { "; did you mean \"\($0)\"?" } ?? ""
                problems.append(CurriculumError(entry.keyLocation, "unknown setting \"\(entry.key)\"\(hint) (known: \(keys.joined(separator: ", ")))"))
            }
        }
        if !problems.isEmpty { throw CurriculumErrors(problems) }
        return config
    }
}
