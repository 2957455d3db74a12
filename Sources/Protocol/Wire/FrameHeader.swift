import TokenfeedSystem
#if _endian(big)
#error("TokenfeedProtocol views little-endian wire data in place and supports little-endian hosts only")
#endif

/// The fixed 24-byte little-endian header that starts every frame (docs/PROTOCOL.md, "Framing").
///
/// ```
/// 0  [4] magic "TKFD"   4 u16 version   6 u16 type   8 u32 flags (0)   12 u32 request_id   16 u64 payload_length
/// ```
public struct FrameHeader: Sendable, Equatable {
    /// Size of the header in bytes.
    public static let size = 24
    /// The magic bytes `TKFD`.
    public static let magic: [UInt8] = [0x54, 0x4B, 0x46, 0x44]
    /// The magic read as a little-endian u32.
    public static let magicValue: UInt32 = 0x4446_4B54
    /// The protocol version this module speaks.
    public static let currentVersion: UInt16 = 1

    /// Protocol version of the sender (always `currentVersion` for frames this module builds).
    public var version: UInt16
    /// What the payload is.
    public var type: MessageType
    /// Reserved; must be zero in version 1.
    public var flags: UInt32
    /// Set by the sender of a Hello or StatsRequest and echoed in the Welcome, Stats or Error that answers it; 0 otherwise.
    public var requestID: UInt32
    /// Number of payload bytes after the header.
    public var payloadLength: UInt64

    /// Creates a header for the current version with zero flags.
    public init(type: MessageType, payloadLength: UInt64, requestID: UInt32 = 0) {
        self.version = FrameHeader.currentVersion
        self.type = type
        self.flags = 0
        self.requestID = requestID
        self.payloadLength = payloadLength
    }

    /// Total frame size: header plus payload.
    public var frameLength: UInt64 { UInt64(FrameHeader.size) + payloadLength }

    /// Writes the 24 header bytes at `destination` (no alignment needed).
    public func write(to destination: UnsafeMutableRawPointer) {
        destination.storeLE(FrameHeader.magicValue, at: 0)
        destination.storeLE(version, at: 4)
        destination.storeLE(type.rawValue, at: 6)
        destination.storeLE(flags, at: 8)
        destination.storeLE(requestID, at: 12)
        destination.storeLE(payloadLength, at: 16)
    }

    /// Appends the 24 header bytes to `bytes`.
    public func append(to bytes: inout [UInt8]) {
        bytes.appendLE(FrameHeader.magicValue)
        bytes.appendLE(version)
        bytes.appendLE(type.rawValue)
        bytes.appendLE(flags)
        bytes.appendLE(requestID)
        bytes.appendLE(payloadLength)
    }

    /// Checks the magic of a frame prefix of at least 4 bytes.
    /// - Throws: `bad_magic`.
    public static func checkMagic(_ prefix: UnsafeRawBufferPointer) throws(ProtocolError) {
        precondition(prefix.count >= 4)
        let got = prefix.loadLE(0, as: UInt32.self)
        guard got == magicValue else {
            let hex = Hex.bytes((0..<4).map { prefix[$0] }, separator: " ")
            throw ProtocolError(.badMagic, "frame header at offset 0: magic is \(hex), expected 54 4b 46 44 (\"TKFD\")")
        }
    }

    /// Decodes and validates the first 24 bytes of `bytes`: magic, version, type, flags, and the
    /// payload length against `limits` (exact size for fixed-size messages).
    /// - Throws: `bad_magic`, `unsupported_version`, `unknown_message_type`, `malformed_frame`
    ///   (flags, wrong fixed size), `unexpected_message` (a type in `limits.refusedTypes`), `oversize_frame`.
    public static func decode(_ bytes: UnsafeRawBufferPointer,
                              limits: FrameLimits = .protocolMaximum) throws(ProtocolError) -> FrameHeader {
        guard bytes.count >= size else {
            throw ProtocolError(.malformedFrame, "frame header: truncated, \(bytes.count) of 24 bytes")
        }
        try checkMagic(bytes)
        let version = bytes.loadLE(4, as: UInt16.self)
        guard version == currentVersion else {
            throw ProtocolError(.unsupportedVersion,
                                "frame header at offset 4: version \(version), this peer speaks only version \(currentVersion)")
        }
        let rawType = bytes.loadLE(6, as: UInt16.self)
        guard let type = MessageType(rawValue: rawType) else {
            throw ProtocolError(.unknownMessageType, "frame header at offset 6: unknown message type \(rawType)")
        }
        let flags = bytes.loadLE(8, as: UInt32.self)
        guard flags == 0 else {
            throw ProtocolError(.malformedFrame, "frame header at offset 8: flags are reserved and must be 0, got 0x\(String(flags, radix: 16))")
        }
        guard !limits.refusedTypes.contains(type) else {
            throw ProtocolError(.unexpectedMessage, "frame header at offset 6: this peer never accepts \(type) frames (they travel the other way)")
        }
        let length = bytes.loadLE(16, as: UInt64.self)
        if let fixed = FrameLimits.fixedPayloadSize(of: type) {
            guard length == fixed else {
                let code: ErrorCode = length > fixed ? .oversizeFrame : .malformedFrame
                throw ProtocolError(code, "frame header at offset 16: \(type) payload must be \(fixed) bytes, got \(length)")
            }
        } else {
            let limit = limits.maximumPayload(for: type)
            guard length <= limit else {
                throw ProtocolError(.oversizeFrame, "frame header at offset 16: \(type) payload of \(length) bytes exceeds the limit of \(limit)")
            }
        }
        var header = FrameHeader(type: type, payloadLength: length, requestID: bytes.loadLE(12, as: UInt32.self))
        header.version = version
        return header
    }
}
