import TokenfeedProtocol

/// The canonical example messages of docs/PROTOCOL.md; their bytes are the files in Tests/ProtocolVectors.
enum Examples {
    static let fingerprint: UInt64 = 0x0123_4567_89AB_CDEF

    static let resumeCursor = Cursor(fingerprint: fingerprint, nextStep: 3, worldSize: 2, batchSize: 2)

    static let hello = Hello(rank: 1, worldSize: 2, batchSize: 2, initialCredits: 4, cursor: nil,
                             jobID: "job-7", authToken: "")

    static let helloResume = Hello(rank: 1, worldSize: 2, batchSize: 2, initialCredits: 4, cursor: resumeCursor,
                                   jobID: "job-7", authToken: "s3cret")

    static let helloReplica = Hello(rank: 1, worldSize: 2, batchSize: 2, initialCredits: 4, cursor: nil,
                                    jobID: "job-7", authToken: "", replicas: 2, replicaIndex: 1)

    static let welcome = Welcome(
        sequenceLength: 7, tokenWidth: .u16, vocabularySize: 50_000, fingerprint: fingerprint,
        startCursor: resumeCursor,
        stages: [StageInfo(name: "stable", startToken: 0, endToken: 56),
                 StageInfo(name: "decay", startToken: 56, endToken: .max)],
        datasets: [DatasetInfo(name: "web", shardPaths: ["web/00000.tfs", "web/00001.tfs"]),
                   DatasetInfo(name: "code", shardPaths: ["code/00000.tfs"])])

    static let credit = Credit(count: 4)

    /// Step 3, rank 1 of 2, batch size 2, sequence length 7 (8 tokens per row), u16 tokens.
    /// Row 0 packs two documents of shard 1 of dataset "web"; row 1 is one document of "code"
    /// followed by 2 padding tokens (bestfit).
    static let batch = Batch(
        step: 3, rank: 1, worldSize: 2, sequenceLength: 7, tokenWidth: .u16, fingerprint: fingerprint,
        rows: [
            Batch.Row(datasetIndex: 0, stageIndex: 1, pieces: [
                Piece(shardIndex: 1, documentIndex: 17, tokenOffset: 1_000, length: 5),
                Piece(shardIndex: 1, documentIndex: 18, tokenOffset: 1_005, length: 3),
            ]),
            Batch.Row(datasetIndex: 1, stageIndex: 1, epoch: 1, pieces: [
                Piece(shardIndex: 0, documentIndex: 2, tokenOffset: 40, length: 6),
                .padding(length: 2),
            ]),
        ],
        tokens: [101, 102, 103, 104, 0, 201, 202, 0,
                 301, 302, 303, 304, 305, 0, 0, 0])

    static let statsRequest = StatsRequest()

    static let stats = Stats(
        currentStage: 1, sequenceLength: 7, positionSequence: 16, tokensServed: 112, batchesServed: 8,
        ringCapacity: 8, ringOccupied: 3, preloadBytes: 4_096, preloadBudgetBytes: 1 << 20, uptimeMilliseconds: 1_500,
        stages: welcome.stages,
        datasets: [Stats.Dataset(name: "web", targetShare: 0.75, realizedShare: 0.5, tokensServed: 70, epoch: 0, quarantinedShards: 0),
                   Stats.Dataset(name: "code", targetShare: 0.25, realizedShare: 0.5, tokensServed: 42, epoch: 1, quarantinedShards: 0)],
        clients: [Stats.Client(rank: 1, worldSize: 2, batchSize: 2, credits: 3, nextStep: 4, batchesSent: 4,
                               waitNanosecondsTotal: 2_000_000, waitNanosecondsMax: 500_000, jobID: "job-7")])

    /// A StatsRequest with the `prometheus` flag, and its answer: the Stats above with a (short) Prometheus text.
    static let statsRequestPrometheus = StatsRequest(prometheus: true)

    static let statsPrometheus: Stats = {
        var answer = stats
        answer.prometheusText = "# TYPE tokenfeed_sessions gauge\ntokenfeed_sessions 1\n"
        return answer
    }()

    static let error = ErrorMessage(code: .jobMismatch,
                                    message: "world_size 4 differs from job \"job-7\" (world_size 2)",
                                    detail: "Hello.world_size")

    static let goodbye = Goodbye(reason: .endOfStream)

    /// (vector file name, request id, message) in the order the doc shows them.
    static let frames: [(name: String, requestID: UInt32, message: Message)] = [
        ("hello", 1, .hello(hello)),
        ("hello_resume", 1, .hello(helloResume)),
        ("hello_replica", 1, .hello(helloReplica)),
        ("welcome", 1, .welcome(welcome)),
        ("credit", 0, .credit(credit)),
        ("batch", 0, .batch(batch)),
        ("stats_request", 9, .statsRequest(statsRequest)),
        ("stats", 9, .stats(stats)),
        ("stats_request_prometheus", 10, .statsRequest(statsRequestPrometheus)),
        ("stats_prometheus", 10, .stats(statsPrometheus)),
        ("error", 1, .error(error)),
        ("goodbye", 0, .goodbye(goodbye)),
    ]
}
