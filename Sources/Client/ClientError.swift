import TokenfeedProtocol

/// Everything that can go wrong for a tokenfeed client: one case per protocol error code the daemon
/// can send (each with the daemon's message and detail), and the failures the client detects itself.
public enum ClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The daemon saw a frame that does not start with `TKFD`.
    case badMagic(message: String, detail: String)
    /// The daemon does not speak this protocol version.
    case unsupportedVersion(message: String, detail: String)
    /// The daemon found a field out of range or inconsistent in a frame this client sent.
    case malformedFrame(message: String, detail: String)
    /// A frame this client sent was larger than its type allows.
    case oversizeFrame(message: String, detail: String)
    /// This client sent a message type the daemon does not know.
    case unknownMessageType(message: String, detail: String)
    /// This client sent a message the daemon does not accept in the session's state.
    case unexpectedMessage(message: String, detail: String)
    /// Another client of the same job declared a different world size or batch size.
    case jobMismatch(message: String, detail: String)
    /// The rank is not below the world size.
    case rankOutOfRange(message: String, detail: String)
    /// Another live connection of the job already serves this rank.
    case rankInUse(message: String, detail: String)
    /// The resume cursor belongs to another curriculum, shard manifest or quarantine state.
    case cursorFingerprintMismatch(message: String, detail: String)
    /// The resume cursor is corrupt or cannot be continued with this world and batch size.
    case badCursor(message: String, detail: String)
    /// The daemon does not allow this user or group to connect (`allow_users`, `allow_groups`; SO_PEERCRED).
    case authFailed(message: String, detail: String)
    /// Shard data could not be read or failed its checksum; `detail` names the shard file and frame.
    case dataError(message: String, detail: String)
    /// The daemon failed internally.
    case internalError(message: String, detail: String)
    /// The daemon is stopping: reconnect later with the last cursor.
    case shuttingDown(message: String, detail: String)
    /// Code 16: the daemon serves its maximum number of connections; retry later.
    case busy(message: String, detail: String)
    /// Code 17: the request exceeds a configured limit of the daemon (memory per session or in total, handshake timeout).
    case limitExceeded(message: String, detail: String)
    /// Code 18: another replica of this data-parallel rank's session left before the end; reconnect
    /// every replica and resume from the rank's cursor.
    case replicaLost(message: String, detail: String)
    /// An error code this version of the protocol does not define.
    case unknownCode(code: UInt16, message: String, detail: String)
    /// The daemon sent bytes that break the protocol (this client detected it and closed).
    case invalidFrame(ProtocolError)
    /// The socket could not be opened or connected.
    case connectionFailed(path: String, reason: String)
    /// The daemon closed the connection without a Goodbye or an Error.
    case connectionClosed(String)
    /// Reading or writing the socket failed.
    case io(String)

    /// The Swift error for an Error frame the daemon sent.
    public init(received error: ErrorMessage) {
        let m = error.message, d = error.detail
        switch error.code {
        case .badMagic: self = .badMagic(message: m, detail: d)
        case .unsupportedVersion: self = .unsupportedVersion(message: m, detail: d)
        case .malformedFrame: self = .malformedFrame(message: m, detail: d)
        case .oversizeFrame: self = .oversizeFrame(message: m, detail: d)
        case .unknownMessageType: self = .unknownMessageType(message: m, detail: d)
        case .unexpectedMessage: self = .unexpectedMessage(message: m, detail: d)
        case .jobMismatch: self = .jobMismatch(message: m, detail: d)
        case .rankOutOfRange: self = .rankOutOfRange(message: m, detail: d)
        case .rankInUse: self = .rankInUse(message: m, detail: d)
        case .cursorFingerprintMismatch: self = .cursorFingerprintMismatch(message: m, detail: d)
        case .badCursor: self = .badCursor(message: m, detail: d)
        case .authFailed: self = .authFailed(message: m, detail: d)
        case .dataError: self = .dataError(message: m, detail: d)
        case .internalError: self = .internalError(message: m, detail: d)
        case .shuttingDown: self = .shuttingDown(message: m, detail: d)
        case .busy: self = .busy(message: m, detail: d)
        case .limitExceeded: self = .limitExceeded(message: m, detail: d)
        case .replicaLost: self = .replicaLost(message: m, detail: d)
        default: self = .unknownCode(code: error.code.rawValue, message: m, detail: d)
        }
    }

    /// The protocol error code, for errors the daemon sent; nil for failures detected locally.
    public var code: ErrorCode? {
        switch self {
        case .badMagic: .badMagic
        case .unsupportedVersion: .unsupportedVersion
        case .malformedFrame: .malformedFrame
        case .oversizeFrame: .oversizeFrame
        case .unknownMessageType: .unknownMessageType
        case .unexpectedMessage: .unexpectedMessage
        case .jobMismatch: .jobMismatch
        case .rankOutOfRange: .rankOutOfRange
        case .rankInUse: .rankInUse
        case .cursorFingerprintMismatch: .cursorFingerprintMismatch
        case .badCursor: .badCursor
        case .authFailed: .authFailed
        case .dataError: .dataError
        case .internalError: .internalError
        case .shuttingDown: .shuttingDown
        case .busy: .busy
        case .limitExceeded: .limitExceeded
        case .replicaLost: .replicaLost
        case .unknownCode(let code, _, _): ErrorCode(rawValue: code)
        case .invalidFrame, .connectionFailed, .connectionClosed, .io: nil
        }
    }

    public var description: String {
        switch self {
        case .badMagic(let m, let d), .unsupportedVersion(let m, let d), .malformedFrame(let m, let d),
             .oversizeFrame(let m, let d), .unknownMessageType(let m, let d), .unexpectedMessage(let m, let d),
             .jobMismatch(let m, let d), .rankOutOfRange(let m, let d), .rankInUse(let m, let d),
             .cursorFingerprintMismatch(let m, let d), .badCursor(let m, let d), .authFailed(let m, let d),
             .dataError(let m, let d), .internalError(let m, let d), .shuttingDown(let m, let d),
             .busy(let m, let d), .limitExceeded(let m, let d), .replicaLost(let m, let d),
             .unknownCode(_, let m, let d):
            return "daemon error \(code!.name): \(m)" + (d.isEmpty ? "" : " [\(d)]")
        case .invalidFrame(let error): return "the daemon sent an invalid frame: \(error)"
        case .connectionFailed(let path, let reason): return "cannot connect to \(path): \(reason)"
        case .connectionClosed(let why): return "connection closed: \(why)"
        case .io(let why): return "socket error: \(why)"
        }
    }
}
