import TokenfeedSystem

/// Client → daemon, the first frame of a session: who the client is and where it wants to start.
///
/// The protocol version is the frame header's version. Payload (docs/PROTOCOL.md, "Hello"):
/// ```
/// 0 u32 rank  4 u32 world_size  8 u32 batch_size  12 u32 initial_credits  16 u16 cursor_length (0|56)
/// 18 [cursor_length] cursor   then str16 job_id (≤ 256 bytes), str16 auth_token (≤ 1,024 bytes)
/// then, only when replicas > 1: u16 replicas, u16 replica_index
/// ```
/// `rank` is the data-parallel rank: which slice of every step's sequences the client receives.
/// Processes that need the same slice — the tensor- and pipeline-parallel replicas of one
/// data-parallel rank — join that rank's session together, each declaring `replicas` (how many join)
/// and its own `replica_index`; each receives every batch (docs/PROTOCOL.md, "Replicas").
public struct Hello: WireMessage, Hashable {
    public static let messageType = MessageType.hello
    /// Longest job id in UTF-8 bytes.
    public static let maxJobIDBytes = 256
    /// Longest auth token in UTF-8 bytes.
    public static let maxAuthTokenBytes = 1_024

    /// Global rank of this client, `0 ..< worldSize`.
    public var rank: UInt32
    /// Number of ranks in the job (all clients of one job must agree).
    public var worldSize: UInt32
    /// Sequences per batch for this rank (all clients of one job must agree).
    public var batchSize: UInt32
    /// Batches the daemon may send before the first Credit (0 is allowed: then nothing flows until a Credit).
    public var initialCredits: UInt32
    /// Where to resume; nil starts at the beginning of the stream.
    public var cursor: Cursor?
    /// Groups the clients of one training job; clients with the same job id share world and batch size. May be empty.
    public var jobID: String
    /// Secret the daemon may require (compared as bytes); may be empty.
    public var authToken: String
    /// Connections that share this data-parallel rank's session, each receiving every batch
    /// (tensor/pipeline-parallel replicas); 1 — the default — is a session of its own.
    public var replicas: UInt16
    /// This connection's index among the rank's replicas, `0 ..< replicas`.
    public var replicaIndex: UInt16

    /// Creates a Hello.
    /// - Precondition: `jobID` ≤ 256 and `authToken` ≤ 1,024 UTF-8 bytes (checked when encoding).
    public init(rank: UInt32, worldSize: UInt32, batchSize: UInt32, initialCredits: UInt32,
                cursor: Cursor? = nil, jobID: String = "", authToken: String = "", replicas: UInt16 = 1, replicaIndex: UInt16 = 0) {
        self.replicas = replicas
        self.replicaIndex = replicaIndex
        self.rank = rank
        self.worldSize = worldSize
        self.batchSize = batchSize
        self.initialCredits = initialCredits
        self.cursor = cursor
        self.jobID = jobID
        self.authToken = authToken
    }

    public func encodePayload(into bytes: inout [UInt8]) {
        bytes.appendLE(rank)
        bytes.appendLE(worldSize)
        bytes.appendLE(batchSize)
        bytes.appendLE(initialCredits)
        if let cursor {
            bytes.appendLE(UInt16(Cursor.size))
            bytes.append(contentsOf: cursor.bytes)
        } else {
            bytes.appendLE(UInt16(0))
        }
        bytes.appendString16(jobID, maxBytes: Hello.maxJobIDBytes, field: "Hello.job_id")
        bytes.appendString16(authToken, maxBytes: Hello.maxAuthTokenBytes, field: "Hello.auth_token")
        if replicas > 1 {
            bytes.appendLE(replicas)
            bytes.appendLE(replicaIndex)
        }
    }

    /// Decodes and validates a Hello payload.
    /// The replica fields are optional: a payload that ends after `auth_token` has `replicas` 1.
    /// - Throws: `malformed_frame` (field and offset named), `rank_out_of_range`, `bad_cursor`.
    public init(payload: UnsafeRawBufferPointer) throws(ProtocolError) {
        var r = ByteReader(payload, message: "Hello")
        rank = try r.u32("rank")
        let worldAt = r.position
        worldSize = try r.u32("world_size")
        guard worldSize >= 1 else { throw r.failure("world_size", "must be at least 1, got 0", at: worldAt) }
        let batchAt = r.position
        batchSize = try r.u32("batch_size")
        guard batchSize >= 1 else { throw r.failure("batch_size", "must be at least 1, got 0", at: batchAt) }
        guard rank < worldSize else {
            throw ProtocolError(.rankOutOfRange, "Hello.rank at offset 24: rank \(rank) is not below world_size \(worldSize)")
        }
        initialCredits = try r.u32("initial_credits")
        let lengthAt = r.position
        let cursorLength = Int(try r.u16("cursor_length"))
        switch cursorLength {
        case 0: cursor = nil
        case Cursor.size:
            let at = FrameHeader.size + r.position
            cursor = try Cursor(bytes: try r.raw(Cursor.size, "cursor"), frameOffset: at)
        default:
            throw r.failure("cursor_length", "must be 0 or \(Cursor.size), got \(cursorLength)", at: lengthAt)
        }
        jobID = try r.string16("job_id", maxBytes: Hello.maxJobIDBytes)
        authToken = try r.string16("auth_token", maxBytes: Hello.maxAuthTokenBytes)
        replicas = 1
        replicaIndex = 0
        if r.remaining >= 4 {
            let replicasAt = r.position
            replicas = try r.u16("replicas")
            guard replicas >= 1 else { throw r.failure("replicas", "must be at least 1, got 0", at: replicasAt) }
            let indexAt = r.position
            replicaIndex = try r.u16("replica_index")
            guard replicaIndex < replicas else {
                throw r.failure("replica_index", "\(replicaIndex) is not below replicas \(replicas)", at: indexAt)
            }
        }
        try r.expectEnd()
    }
}
