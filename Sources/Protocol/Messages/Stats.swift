import TokenfeedSystem

/// Daemon → client: the daemon's state, answering a StatsRequest (same request id).
///
/// A fixed 64-byte block followed by three lists (docs/PROTOCOL.md, "Stats"):
/// ```
/// 0 u32 current_stage  4 u32 sequence_length  8 u64 position_sequence  16 u64 tokens_served
/// 24 u64 batches_served  32 u32 ring_capacity  36 u32 ring_occupied  40 u64 preload_bytes
/// 48 u64 preload_budget_bytes  56 u64 uptime_ms  64 stages…  datasets…  clients…  [prometheus_text]
/// ```
/// `prometheus_text` (u32 length + UTF-8) follows only in an answer to a StatsRequest with the
/// `prometheus` flag.
public struct Stats: WireMessage, Hashable {
    public static let messageType = MessageType.stats

    /// Per-dataset progress in the current stage.
    public struct Dataset: Sendable, Hashable {
        /// Dataset name.
        public var name: String
        /// The dataset's weight in the current stage, normalised to sum 1.
        public var targetShare: Double
        /// Share of the current stage's sequences served so far that came from this dataset.
        public var realizedShare: Double
        /// Tokens of this dataset served since the stream began (counted as `sequence_length` per sequence).
        public var tokensServed: UInt64
        /// Epoch the dataset's read position is in (0 = first pass).
        public var epoch: UInt32
        /// Shards of this dataset quarantined so far.
        public var quarantinedShards: UInt32

        /// Creates a dataset record.
        public init(name: String, targetShare: Double, realizedShare: Double, tokensServed: UInt64,
                    epoch: UInt32, quarantinedShards: UInt32) {
            self.name = name
            self.targetShare = targetShare
            self.realizedShare = realizedShare
            self.tokensServed = tokensServed
            self.epoch = epoch
            self.quarantinedShards = quarantinedShards
        }
    }

    /// One connected session.
    public struct Client: Sendable, Hashable {
        /// The session's rank.
        public var rank: UInt32
        /// The session's world size.
        public var worldSize: UInt32
        /// The session's per-rank batch size.
        public var batchSize: UInt32
        /// Its current credit balance.
        public var credits: UInt32
        /// The next step it will receive.
        public var nextStep: UInt64
        /// Batches sent to it.
        public var batchesSent: UInt64
        /// Total time it had credit but no batch was ready, in nanoseconds.
        public var waitNanosecondsTotal: UInt64
        /// The longest such single wait, in nanoseconds.
        public var waitNanosecondsMax: UInt64
        /// Its job id.
        public var jobID: String

        /// Creates a client record.
        public init(rank: UInt32, worldSize: UInt32, batchSize: UInt32, credits: UInt32, nextStep: UInt64,
                    batchesSent: UInt64, waitNanosecondsTotal: UInt64, waitNanosecondsMax: UInt64, jobID: String) {
            self.rank = rank
            self.worldSize = worldSize
            self.batchSize = batchSize
            self.credits = credits
            self.nextStep = nextStep
            self.batchesSent = batchesSent
            self.waitNanosecondsTotal = waitNanosecondsTotal
            self.waitNanosecondsMax = waitNanosecondsMax
            self.jobID = jobID
        }
    }

    /// Index of the stage the furthest session is in.
    public var currentStage: UInt32
    /// Tokens per sequence.
    public var sequenceLength: UInt32
    /// Global index of the next sequence of the furthest session (its token position is this × sequence_length).
    public var positionSequence: UInt64
    /// Tokens served to all sessions since the daemon started (sequence_length per row).
    public var tokensServed: UInt64
    /// Batch frames sent since the daemon started.
    public var batchesServed: UInt64
    /// Slots in the batch ring.
    public var ringCapacity: UInt32
    /// Slots holding ready batches.
    public var ringOccupied: UInt32
    /// Bytes of decompressed shard data held by the preloader.
    public var preloadBytes: UInt64
    /// The preloader's byte budget.
    public var preloadBudgetBytes: UInt64
    /// Milliseconds since the daemon started.
    public var uptimeMilliseconds: UInt64
    /// The curriculum's stages.
    public var stages: [StageInfo]
    /// Per-dataset progress.
    public var datasets: [Dataset]
    /// Connected sessions.
    public var clients: [Client]
    /// The daemon's metrics in the Prometheus text exposition format, when the request asked for them.
    public var prometheusText: String?
    /// The longest `prometheus_text` accepted (bytes).
    public static let maxPrometheusTextBytes = 12 << 20

    /// Creates a Stats message.
    public init(currentStage: UInt32, sequenceLength: UInt32, positionSequence: UInt64, tokensServed: UInt64,
                batchesServed: UInt64, ringCapacity: UInt32, ringOccupied: UInt32, preloadBytes: UInt64,
                preloadBudgetBytes: UInt64, uptimeMilliseconds: UInt64, stages: [StageInfo],
                datasets: [Dataset], clients: [Client], prometheusText: String? = nil) {
        self.currentStage = currentStage
        self.sequenceLength = sequenceLength
        self.positionSequence = positionSequence
        self.tokensServed = tokensServed
        self.batchesServed = batchesServed
        self.ringCapacity = ringCapacity
        self.ringOccupied = ringOccupied
        self.preloadBytes = preloadBytes
        self.preloadBudgetBytes = preloadBudgetBytes
        self.uptimeMilliseconds = uptimeMilliseconds
        self.stages = stages
        self.datasets = datasets
        self.clients = clients
        self.prometheusText = prometheusText
    }

    public func encodePayload(into bytes: inout [UInt8]) {
        bytes.appendLE(currentStage)
        bytes.appendLE(sequenceLength)
        bytes.appendLE(positionSequence)
        bytes.appendLE(tokensServed)
        bytes.appendLE(batchesServed)
        bytes.appendLE(ringCapacity)
        bytes.appendLE(ringOccupied)
        bytes.appendLE(preloadBytes)
        bytes.appendLE(preloadBudgetBytes)
        bytes.appendLE(uptimeMilliseconds)
        bytes.appendLE(UInt32(stages.count))
        for stage in stages { stage.encode(into: &bytes) }
        bytes.appendLE(UInt32(datasets.count))
        for d in datasets {
            bytes.appendLE(d.targetShare)
            bytes.appendLE(d.realizedShare)
            bytes.appendLE(d.tokensServed)
            bytes.appendLE(d.epoch)
            bytes.appendLE(d.quarantinedShards)
            bytes.appendString16(d.name, maxBytes: DatasetInfo.maxNameBytes, field: "Stats.dataset.name")
        }
        bytes.appendLE(UInt32(clients.count))
        for c in clients {
            bytes.appendLE(c.rank)
            bytes.appendLE(c.worldSize)
            bytes.appendLE(c.batchSize)
            bytes.appendLE(c.credits)
            bytes.appendLE(c.nextStep)
            bytes.appendLE(c.batchesSent)
            bytes.appendLE(c.waitNanosecondsTotal)
            bytes.appendLE(c.waitNanosecondsMax)
            bytes.appendString16(c.jobID, maxBytes: Hello.maxJobIDBytes, field: "Stats.client.job_id")
        }
        if let prometheusText {
            bytes.appendLE(UInt32(prometheusText.utf8.count))
            bytes.append(contentsOf: prometheusText.utf8)
        }
    }

    /// Decodes and validates a Stats payload. - Throws: `malformed_frame` naming the field and offset.
    public init(payload: UnsafeRawBufferPointer) throws(ProtocolError) {
        var r = ByteReader(payload, message: "Stats")
        currentStage = try r.u32("current_stage")
        sequenceLength = try r.u32("sequence_length")
        positionSequence = try r.u64("position_sequence")
        tokensServed = try r.u64("tokens_served")
        batchesServed = try r.u64("batches_served")
        ringCapacity = try r.u32("ring_capacity")
        ringOccupied = try r.u32("ring_occupied")
        preloadBytes = try r.u64("preload_bytes")
        preloadBudgetBytes = try r.u64("preload_budget_bytes")
        uptimeMilliseconds = try r.u64("uptime_ms")
        stages = try StageInfo.decodeList(&r, field: "stages", requireContiguous: false)
        guard stages.isEmpty || currentStage < stages.count else {
            throw r.failure("current_stage", "\(currentStage) is not below stage_count \(stages.count)", at: 0)
        }
        let datasetCount = try r.count("dataset_count", minimumElementSize: 34, range: 0...0xFFFF)
        var datasets: [Dataset] = []
        datasets.reserveCapacity(datasetCount)
        for i in 0..<datasetCount {
            let target = try r.f64("datasets[\(i)].target_share")
            let realized = try r.f64("datasets[\(i)].realized_share")
            let tokens = try r.u64("datasets[\(i)].tokens_served")
            let epoch = try r.u32("datasets[\(i)].epoch")
            let quarantined = try r.u32("datasets[\(i)].quarantined_shards")
            let name = try r.string16("datasets[\(i)].name", maxBytes: DatasetInfo.maxNameBytes)
            datasets.append(Dataset(name: name, targetShare: target, realizedShare: realized, tokensServed: tokens,
                                    epoch: epoch, quarantinedShards: quarantined))
        }
        self.datasets = datasets
        let clientCount = try r.count("client_count", minimumElementSize: 50, range: 0...0xFFFF)
        var clients: [Client] = []
        clients.reserveCapacity(clientCount)
        for i in 0..<clientCount {
            let rank = try r.u32("clients[\(i)].rank")
            let world = try r.u32("clients[\(i)].world_size")
            let batch = try r.u32("clients[\(i)].batch_size")
            let credits = try r.u32("clients[\(i)].credits")
            let next = try r.u64("clients[\(i)].next_step")
            let sent = try r.u64("clients[\(i)].batches_sent")
            let waitTotal = try r.u64("clients[\(i)].wait_ns_total")
            let waitMax = try r.u64("clients[\(i)].wait_ns_max")
            let job = try r.string16("clients[\(i)].job_id", maxBytes: Hello.maxJobIDBytes)
            clients.append(Client(rank: rank, worldSize: world, batchSize: batch, credits: credits, nextStep: next,
                                  batchesSent: sent, waitNanosecondsTotal: waitTotal, waitNanosecondsMax: waitMax,
                                  jobID: job))
        }
        self.clients = clients
        if r.remaining > 0 {
            let start = r.position
            let length = Int(try r.u32("prometheus_text.length"))
            guard length <= Self.maxPrometheusTextBytes else {
                throw r.failure("prometheus_text", "length \(length) exceeds the limit of \(Self.maxPrometheusTextBytes) bytes", at: start)
            }
            guard let text = String(validating: try r.raw(length, "prometheus_text"), as: UTF8.self) else {
                throw r.failure("prometheus_text", "not valid UTF-8", at: start + 4)
            }
            prometheusText = text
        } else {
            prometheusText = nil
        }
        try r.expectEnd()
    }
}
