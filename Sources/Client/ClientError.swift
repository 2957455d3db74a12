import SystemPackage
import TokenfeedProtocol

/// Everything that can go wrong for a tokenfeed client: an Error frame the daemon sent (its
/// ``code``, message and detail), a frame of the daemon's that breaks the protocol, or a failure the
/// client meets itself (connecting, the connection closing, a socket call failing, with its `Errno`).
///
/// A struct, not an enum, so that a protocol error code added by a newer daemon, or a new kind of
/// local failure, breaks no client: match on ``kind`` and ``code`` — both extensible
/// `RawRepresentable` structs of known static values, as swift-system's `Errno` is — with a
/// `default`:
///
/// ```swift
/// do { batch = try client.next() } catch {
///     switch error.code {
///     case .shuttingDown?, .replicaLost?: reconnect(from: client.cursor)
///     case .dataError?: report(error.detail)        // the shard file and frame
///     default: throw error
///     }
/// }
/// ```
public struct ClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Where the failure was found: by the daemon (it sent an Error frame) or by this client.
    public struct Kind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The daemon sent an Error frame: ``ClientError/code`` says which (a code this client does
        /// not know keeps its number), ``ClientError/message`` and ``ClientError/detail`` are the daemon's.
        public static let daemonError = Kind(rawValue: "daemon_error")
        /// The daemon sent bytes that break the protocol; this client closed the connection.
        /// ``ClientError/code``, ``ClientError/message`` and ``ClientError/detail`` say what this client found.
        public static let invalidFrame = Kind(rawValue: "invalid_frame")
        /// The socket could not be opened or connected (``ClientError/socketPath``, ``ClientError/errno``).
        public static let connectionFailed = Kind(rawValue: "connection_failed")
        /// The daemon closed the connection without a Goodbye or an Error, or the client was closed.
        public static let connectionClosed = Kind(rawValue: "connection_closed")
        /// Reading or writing the socket failed (``ClientError/errno``).
        public static let io = Kind(rawValue: "io")

        public var description: String { rawValue }
    }

    /// Where the failure was found.
    public var kind: Kind
    /// The protocol error code: the daemon's (``Kind/daemonError``), or the violation this client
    /// found in the daemon's bytes (``Kind/invalidFrame``); nil for the other kinds.
    public var code: ErrorCode?
    /// A sentence for a person: the daemon's message, what was wrong with its frame, or the local
    /// failure (`strerror`'s text for a failed system call, after the call's name for ``Kind/io``).
    public var message: String
    /// The daemon's detail (a shard file and frame, a field name; may be empty), or the field of
    /// an invalid frame; empty for local failures.
    public var detail: String
    /// The socket path, for ``Kind/connectionFailed``.
    public var socketPath: String?
    /// The system call's error, for ``Kind/connectionFailed`` and ``Kind/io``; nil when no call failed
    /// (a socket path too long for `sockaddr_un`).
    public var errno: Errno?

    /// An error of any kind; prefer the factories below, which fill the fields each kind uses.
    public init(kind: Kind, code: ErrorCode? = nil, message: String, detail: String = "", socketPath: String? = nil, errno: Errno? = nil) {
        self.kind = kind
        self.code = code
        self.message = message
        self.detail = detail
        self.socketPath = socketPath
        self.errno = errno
    }

    /// The Swift error for an Error frame the daemon sent (any code, known to this client or not).
    public init(received error: ErrorMessage) {
        self.init(kind: .daemonError, code: error.code, message: error.message, detail: error.detail)
    }

    /// The daemon's bytes break the protocol, as `error` says.
    public static func invalidFrame(_ error: ProtocolError) -> ClientError {
        ClientError(kind: .invalidFrame, code: error.code, message: error.message, detail: error.detail)
    }

    /// Connecting to `path` failed in a system call with `errno`.
    public static func connectionFailed(path: String, errno: Errno) -> ClientError {
        ClientError(kind: .connectionFailed, message: errno.description, socketPath: path, errno: errno)
    }

    /// Connecting to `path` is impossible for `reason`, before any system call.
    public static func connectionFailed(path: String, reason: String) -> ClientError {
        ClientError(kind: .connectionFailed, message: reason, socketPath: path)
    }

    /// The connection ended, for `reason`.
    public static func connectionClosed(_ reason: String) -> ClientError {
        ClientError(kind: .connectionClosed, message: reason)
    }

    /// The system call `call` (`send`, `recv`) failed with `errno`.
    public static func io(_ call: String, errno: Errno) -> ClientError {
        ClientError(kind: .io, message: "\(call): \(errno.description)", errno: errno)
    }

    /// The error as a ``ProtocolError``, for the two kinds that carry a code.
    public var protocolError: ProtocolError? { code.map { ProtocolError($0, message, detail: detail) } }

    /// `daemon error CODE: MESSAGE [DETAIL]`, `the daemon sent an invalid frame: …`,
    /// `cannot connect to PATH: REASON`, `connection closed: …` or `socket error: CALL: REASON`.
    public var description: String {
        switch kind {
        case .daemonError:
            return "daemon error \(code?.name ?? "?"): \(message)" + (detail.isEmpty ? "" : " [\(detail)]")
        case .invalidFrame:
            return "the daemon sent an invalid frame: \(protocolError.map { "\($0)" } ?? message)"
        case .connectionFailed:
            return "cannot connect to \(socketPath ?? "?"): \(message)"
        case .connectionClosed:
            return "connection closed: \(message)"
        case .io:
            return "socket error: \(message)"
        default:
            return "\(kind): \(message)" + (detail.isEmpty ? "" : " [\(detail)]")
        }
    }
}
