/// The typed error codes carried by `Error` frames (docs/PROTOCOL.md, "Error codes").
///
/// A struct rather than an enum so that a code from a newer peer still decodes; `isKnown` tells
/// whether this version of the protocol defines it.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The first four bytes of a frame are not `TKFD`.
    public static let badMagic = ErrorCode(rawValue: 1)
    /// The frame header's version is not one this peer speaks.
    public static let unsupportedVersion = ErrorCode(rawValue: 2)
    /// A field has an impossible value, a length disagrees with the bytes present, reserved bits are set.
    public static let malformedFrame = ErrorCode(rawValue: 3)
    /// A payload length exceeds the limit for its message type.
    public static let oversizeFrame = ErrorCode(rawValue: 4)
    /// The frame header names a message type this version does not define.
    public static let unknownMessageType = ErrorCode(rawValue: 5)
    /// A well-formed message arrived in a state where it is not allowed (a second Hello, Credit before Hello, a Batch from a client).
    public static let unexpectedMessage = ErrorCode(rawValue: 6)
    /// The client's world size or batch size differs from the other clients of the same job.
    public static let jobMismatch = ErrorCode(rawValue: 7)
    /// The client's rank is not below its world size.
    public static let rankOutOfRange = ErrorCode(rawValue: 8)
    /// Another live connection of the same job already serves this rank.
    public static let rankInUse = ErrorCode(rawValue: 9)
    /// The resume cursor was made for another curriculum, manifest or quarantine state.
    public static let cursorFingerprintMismatch = ErrorCode(rawValue: 10)
    /// The resume cursor is corrupt (checksum, magic, version) or cannot be continued with this world and batch size.
    public static let badCursor = ErrorCode(rawValue: 11)
    /// The peer may not connect: its user and group are not allowed (SO_PEERCRED; sent before any other frame).
    public static let authFailed = ErrorCode(rawValue: 12)
    /// Shard data could not be read or failed its checksum under the fail-fast policy; the detail names file and frame.
    public static let dataError = ErrorCode(rawValue: 13)
    /// A bug or resource failure in the daemon.
    public static let internalError = ErrorCode(rawValue: 14)
    /// The daemon is stopping; reconnect later and resume from the last cursor.
    public static let shuttingDown = ErrorCode(rawValue: 15)
    /// The daemon serves its maximum number of connections; retry later.
    public static let busy = ErrorCode(rawValue: 16)
    /// The request would exceed a configured limit of the daemon (per-session or total memory, the handshake timeout).
    public static let limitExceeded = ErrorCode(rawValue: 17)
    /// Another replica of this data-parallel rank's session left before the end of the stream: the
    /// session ends for every replica (a tensor-parallel group dies together); resume from the rank's cursor.
    public static let replicaLost = ErrorCode(rawValue: 18)

    /// Every code this version of the protocol defines, in numeric order.
    public static let allKnown: [ErrorCode] = [
        .badMagic, .unsupportedVersion, .malformedFrame, .oversizeFrame, .unknownMessageType,
        .unexpectedMessage, .jobMismatch, .rankOutOfRange, .rankInUse, .cursorFingerprintMismatch,
        .badCursor, .authFailed, .dataError, .internalError, .shuttingDown, .busy, .limitExceeded, .replicaLost,
    ]

    /// Whether this version of the protocol defines the code.
    public var isKnown: Bool { rawValue >= 1 && rawValue <= 18 }

    /// The code's name as written in docs/PROTOCOL.md, or `code_N` for an unknown one.
    public var name: String {
        switch rawValue {
        case 1: "bad_magic"
        case 2: "unsupported_version"
        case 3: "malformed_frame"
        case 4: "oversize_frame"
        case 5: "unknown_message_type"
        case 6: "unexpected_message"
        case 7: "job_mismatch"
        case 8: "rank_out_of_range"
        case 9: "rank_in_use"
        case 10: "cursor_fingerprint_mismatch"
        case 11: "bad_cursor"
        case 12: "auth_failed"
        case 13: "data_error"
        case 14: "internal_error"
        case 15: "shutting_down"
        case 16: "busy"
        case 17: "limit_exceeded"
        case 18: "replica_lost"
        default: "code_\(rawValue)"
        }
    }

    public var description: String { name }
}
