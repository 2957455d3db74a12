import TokenfeedSystem

/// Either direction: a typed, fatal error. The sender closes the connection after sending it.
///
/// Payload: `0 u16 code  2 u16 reserved  4 str16 message (≤ 4,096 bytes)  then str16 detail (≤ 4,096 bytes)`.
/// `detail` names the subject when there is one: the shard path and frame for `data_error`,
/// the field for `malformed_frame`.
public struct ErrorMessage: WireMessage, Hashable {
    public static let messageType = MessageType.error
    /// Longest message or detail in UTF-8 bytes; longer text is cut at a character boundary when encoding.
    public static let maxTextBytes = 4_096

    /// The typed code.
    public var code: ErrorCode
    /// A sentence for a person.
    public var message: String
    /// The subject (file and frame, field); may be empty.
    public var detail: String

    /// Creates an Error message.
    public init(code: ErrorCode, message: String, detail: String = "") {
        self.code = code
        self.message = message
        self.detail = detail
    }

    /// The wire form of a `ProtocolError`.
    public init(_ error: ProtocolError) {
        self.init(code: error.code, message: error.message, detail: error.detail)
    }

    /// The received error as a Swift error.
    public var protocolError: ProtocolError { ProtocolError(code, message, detail: detail) }

    public func encodePayload(into bytes: inout [UInt8]) {
        bytes.appendLE(code.rawValue)
        bytes.appendLE(UInt16(0))
        bytes.appendString16(message.utf8Prefix(maxBytes: ErrorMessage.maxTextBytes),
                             maxBytes: ErrorMessage.maxTextBytes, field: "Error.message")
        bytes.appendString16(detail.utf8Prefix(maxBytes: ErrorMessage.maxTextBytes),
                             maxBytes: ErrorMessage.maxTextBytes, field: "Error.detail")
    }

    /// Decodes an Error payload. Unknown codes are kept (`code.isKnown` is false).
    /// - Throws: `malformed_frame` naming the field.
    public init(payload: UnsafeRawBufferPointer) throws(ProtocolError) {
        var r = ByteReader(payload, message: "Error")
        code = ErrorCode(rawValue: try r.u16("code"))
        try r.reserved(UInt16.self, "reserved")
        message = try r.string16("message", maxBytes: ErrorMessage.maxTextBytes)
        detail = try r.string16("detail", maxBytes: ErrorMessage.maxTextBytes)
        try r.expectEnd()
    }
}
