/// The largest payload accepted for each message type; a header announcing more is rejected with
/// `oversize_frame` before any payload byte is buffered. Fixed-size messages must have exactly their size.
public struct FrameLimits: Sendable, Equatable {
    /// Largest Hello payload (protocol maximum 4,096).
    public var hello: UInt64 = 4_096
    /// Largest Welcome payload (protocol maximum 64 MiB; stage, dataset and shard path tables).
    public var welcome: UInt64 = 64 << 20
    /// Largest Batch payload (protocol maximum 1 GiB). A client may lower it to its exact batch frame size after Welcome.
    public var batch: UInt64 = 1 << 30
    /// Largest Stats payload (protocol maximum 16 MiB).
    public var stats: UInt64 = 16 << 20
    /// Largest Error payload (protocol maximum 8,200: two strings of at most 4,096 bytes).
    public var error: UInt64 = 8_200
    /// Types this receiver never accepts from its peer (a daemon: Welcome, Batch, Stats, Error):
    /// refused at the header with `unexpected_message`, before any payload byte is buffered.
    public var refusedTypes: [MessageType] = []

    /// The protocol's maxima.
    public static let protocolMaximum = FrameLimits()

    /// Creates the protocol's maxima; lower individual fields to be stricter.
    public init() {}

    /// Exact payload size of fixed-size messages, nil for variable-size ones.
    public static func fixedPayloadSize(of type: MessageType) -> UInt64? {
        switch type {
        case .credit: 4
        case .goodbye: 4
        default: nil
        }
    }

    /// The largest payload allowed for `type`.
    public func maximumPayload(for type: MessageType) -> UInt64 {
        switch type {
        case .hello: hello
        case .welcome: welcome
        case .batch: batch
        case .stats: stats
        case .error: error
        case .statsRequest: 4   // empty, or u32 flags
        case .credit, .goodbye: FrameLimits.fixedPayloadSize(of: type)!
        }
    }
}
