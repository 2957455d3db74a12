import SystemPackage

/// Why the daemon could not start, from ``Server/open(options:logger:)`` and ``Server/start()``
/// (typed throws): what failed (``kind``) and a message naming the file and line:column, the
/// dataset, shard and frame, or the system call and path — the text `tokenfeedd` prints and sends
/// to the trainers systemd queued on its socket.
///
/// `Kind` is a closed enum on purpose: the daemon's own code (`tokenfeedd`'s exit status for each
/// kind) must decide about every kind, so a new one fails to compile until it has.
public struct ServerStartupError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What could not be made ready.
    public enum Kind: Sendable, Hashable, CaseIterable {
        /// `--state-dir` cannot be created, or is not private to the daemon's user (owner, mode).
        case stateDirectory
        /// The curriculum does not load or validate, including dataset folders it names that are
        /// missing under the data root (every problem with its file:line:column).
        case curriculum
        /// A dataset folder or shard cannot be opened or read (header, footer, metadata, checksum),
        /// or a dataset has no folder (no data root).
        case data
        /// Verification found corrupt shards under `--on-corrupt fail`, or every shard of a dataset
        /// under `quarantine`.
        case corruptData
        /// A shard's largest frame does not fit twice in `--preload-bytes`.
        case preloadBudget
        /// `--log-file` cannot be opened.
        case logFile
        /// `--metrics-listen` cannot be bound.
        case metricsEndpoint
        /// Another live process listens on the socket path.
        case socketInUse
        /// The socket path cannot be bound for another reason: something other than a stale socket is
        /// there, the path is too long, a permission is missing.
        case socket
    }

    /// What could not be made ready.
    public var kind: Kind
    /// What went wrong, naming the file, dataset, shard, option or path (as printed).
    public var message: String
    /// The failed system call's error, when one failed.
    public var errno: Errno?

    /// A failure of `kind` described by `message`.
    public init(_ kind: Kind, _ message: String, errno: Errno? = nil) {
        self.kind = kind
        self.message = message
        self.errno = errno
    }

    /// A failed system call, its text as ``SystemCallError`` writes it.
    public init(_ kind: Kind, _ error: SystemCallError) {
        self.init(kind, error.description, errno: Errno(rawValue: error.code))
    }

    public var description: String { message }
}
