/// What a client knows about its session after the handshake; `BatchView` checks every batch
/// against it (shape, rank, and that dataset, stage and shard indices exist in the Welcome).
public struct BatchExpectation: Sendable, Hashable {
    /// The session's rank.
    public var rank: UInt32
    /// The session's world size.
    public var worldSize: UInt32
    /// The session's per-rank batch size.
    public var batchSize: UInt32
    /// The Welcome's sequence length.
    public var sequenceLength: UInt32
    /// The Welcome's token width.
    public var tokenWidth: TokenWidth
    /// The Welcome's fingerprint.
    public var fingerprint: UInt64
    /// Number of stages in the Welcome.
    public var stageCount: UInt32
    /// Shards per dataset, indexed by dataset.
    public var shardCounts: [UInt32]

    /// The expectation for a session opened with `hello` and answered with `welcome`.
    public init(hello: Hello, welcome: Welcome) {
        rank = hello.rank
        worldSize = hello.worldSize
        batchSize = hello.batchSize
        sequenceLength = welcome.sequenceLength
        tokenWidth = welcome.tokenWidth
        fingerprint = welcome.fingerprint
        stageCount = UInt32(welcome.stages.count)
        shardCounts = welcome.datasets.map { UInt32($0.shardPaths.count) }
    }

    /// The exact frame length of this session's batches is not fixed (pieces vary), but this is the largest.
    public var maximumFrameLength: Int {
        let layout = BatchLayout(batchSize: Int(batchSize), sequenceLength: Int(sequenceLength), tokenWidth: tokenWidth,
                                 pieceCount: Int(batchSize) * (Int(sequenceLength) + 1))
        return layout.frameLength
    }
}
