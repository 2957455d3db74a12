import Logging
import TokenfeedCurriculum
import TokenfeedEngine

/// Everything `tokenfeedd` needs to serve, from the command line and the config file merged
/// (docs/OPERATIONS.md, "Options").
public struct ServerOptions: Sendable, Hashable {
    /// The curriculum file.
    public var curriculumPath: String
    /// The folder holding the dataset folders (nil: the curriculum's paths are used as written).
    public var dataRoot: String?
    /// The Unix socket path to listen on (ignored when a socket is passed by systemd).
    public var socketPath: String
    /// Permission bits of the socket file (default 0o660).
    public var socketMode: UInt32
    /// Where to write `stats.json` and the last cursor of every rank; nil writes nothing.
    public var stateDirectory: String?
    /// Byte budget of the frame cache every session shares (decompressed frames held ahead of need).
    public var preloadBytes: Int
    /// Batches each session's packer may run ahead (ring slots, rounded up to a power of two).
    public var ringSlots: Int
    /// The log level.
    public var logLevel: Logger.Level
    /// The shape of log lines (`--log-format`, default `text`).
    public var logFormat: LogFormat = .text
    /// What to do with corrupt shard data (`--on-corrupt`, default `fail`).
    public var onCorrupt: CorruptDataPolicy
    /// How much of every shard to verify before listening (`--verify-shards`, default `none`);
    /// `quarantine` verifies every frame at startup whatever this says.
    public var verifyShards: ShardVerificationMode
    /// Who may connect (`allow_users`, `allow_groups`; default root, the daemon's user and group).
    public var peerPolicy: PeerPolicy = .daemonDefault
    /// The log file (`--log-file`, re-opened on SIGHUP); nil logs to standard error.
    public var logFile: String?
    /// Where to serve `GET /metrics` (`--metrics-listen`); nil serves no metrics endpoint.
    public var metricsListen: MetricsAddress?
    /// Whether `metricsListen` may be an address other hosts can reach (`--metrics-listen-any`);
    /// without it only loopback addresses are accepted.
    public var metricsListenAny = false
    /// Seconds between rewrites of `stats.json` while sessions are open (default 5).
    public var statsIntervalSeconds = 5
    /// Connection, handshake and memory limits (defaults: ``ServingLimits/init()``).
    public var limits = ServingLimits()
    /// The order sequences are drawn in (`--order`, `order:`; default quota): part of the stream
    /// fingerprint, so a cursor made under one order is refused under the other.
    public var order: StreamOrder = .quota
    /// With `bestfit` packing, the threads (at the lowest priority) that count every shard's rows in
    /// the background after READY (``BestFitBackgroundCount``); 0 counts only when a session needs it.
    public var bestFitCountThreads = BestFitBackgroundCount.defaultThreads

    /// The values `ringSlots` may take.
    public static let ringSlotsRange = 2...1024

    /// Defaults for everything but the three required settings.
    public init(curriculumPath: String, dataRoot: String?, socketPath: String, socketMode: UInt32 = 0o660,
                stateDirectory: String? = nil, preloadBytes: Int = 256 << 20, ringSlots: Int = 8,
                logLevel: Logger.Level = .info, onCorrupt: CorruptDataPolicy = .fail,
                verifyShards: ShardVerificationMode = .none) {
        self.curriculumPath = curriculumPath
        self.dataRoot = dataRoot
        self.socketPath = socketPath
        self.socketMode = socketMode
        self.stateDirectory = stateDirectory
        self.preloadBytes = preloadBytes
        self.ringSlots = ringSlots
        self.logLevel = logLevel
        self.onCorrupt = onCorrupt
        self.verifyShards = verifyShards
    }
}
