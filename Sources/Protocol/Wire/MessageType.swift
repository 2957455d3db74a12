/// The message types of protocol version 1 (frame header bytes 6–7).
public enum MessageType: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    /// Client → daemon: opens a session.
    case hello = 1
    /// Daemon → client: accepts a Hello and describes the stream.
    case welcome = 2
    /// Client → daemon: grants more batches.
    case credit = 3
    /// Daemon → client: one batch of one rank's rows for one step.
    case batch = 4
    /// Client → daemon: asks for the daemon's state (allowed without a Hello).
    case statsRequest = 5
    /// Daemon → client: answers a StatsRequest.
    case stats = 6
    /// Either direction: a typed, fatal error; the sender closes the connection after it.
    case error = 7
    /// Either direction: an orderly end of the session.
    case goodbye = 8

    /// The name used in docs/PROTOCOL.md.
    public var description: String {
        switch self {
        case .hello: "Hello"
        case .welcome: "Welcome"
        case .credit: "Credit"
        case .batch: "Batch"
        case .statsRequest: "StatsRequest"
        case .stats: "Stats"
        case .error: "Error"
        case .goodbye: "Goodbye"
        }
    }
}
