/// What one client, or all of them, may take from the daemon (docs/OPERATIONS.md, "Limits").
public struct ServingLimits: Sendable, Hashable {
    /// Open connections at most; the next one gets `busy` and is closed (`--max-connections`).
    public var maxConnections: Int = 256
    /// Seconds a connection may take to send its Hello or StatsRequest; then `limit_exceeded` (`--handshake-timeout`).
    public var handshakeTimeoutSeconds: Int = 10
    /// Bytes one session's ring may take (the frame cache is the daemon's, counted once in the total); a Hello that needs more gets `limit_exceeded`
    /// before anything is allocated (`--session-memory`).
    public var sessionMemoryBytes: Int = 2 << 30
    /// Bytes the frame cache and all sessions together may take; a Hello that would pass it gets `limit_exceeded` (`--total-memory`).
    public var totalMemoryBytes: Int = 16 << 30
    /// Bytes of answers (Stats, Errors) queued for a client that does not read them; beyond this the
    /// daemon stops reading that client's requests until the client reads (`--outbox-bytes`).
    public var outboxBytes: Int = 4 << 20
    /// Sessions one client process (by `SO_PEERCRED` pid) may set up per second once it has used its
    /// burst; a Hello beyond it gets `busy` (`--session-rate`; 0: no limit). See ``SessionSetupRate``.
    public var sessionSetupsPerSecond: Int = 16
    /// Sessions one client process may set up at once before `sessionSetupsPerSecond` applies (`--session-burst`).
    public var sessionSetupBurst: Int = 64
    /// The values `maxConnections` may take.
    public static let maxConnectionsRange = 1...(1 << 20)
    /// The values `handshakeTimeoutSeconds` may take (a day at most).
    public static let handshakeTimeoutRange = 1...86_400
    /// The values `sessionSetupsPerSecond` may take (0: no limit).
    public static let sessionSetupRange = 0...1_000_000
    /// The values `sessionSetupBurst` may take.
    public static let sessionBurstRange = 1...1_000_000
    /// The values `outboxBytes` may take: at least one largest Stats answer's worth of room, at most 1 GiB.
    public static let outboxBytesRange = (64 << 10)...(1 << 30)

    /// The defaults above.
    public init() {}
}
