/// Which global sequences a rank receives. A step is `worldSize × batchSize` consecutive global
/// sequences; rank `r` receives the `r`-th run of `batchSize` of them. With the same global batch,
/// any world size sees the same global order.
public struct RankSlice: Sendable, Hashable {
    public var rank: Int
    public var worldSize: Int
    public var batchSize: Int

    public init(rank: Int, worldSize: Int, batchSize: Int) {
        precondition(worldSize > 0 && batchSize > 0 && rank >= 0 && rank < worldSize)
        self.rank = rank
        self.worldSize = worldSize
        self.batchSize = batchSize
    }

    /// Sequences per step, over all ranks.
    public var globalBatch: Int { worldSize * batchSize }

    /// The global index of the `j`-th sequence of this rank's batch at `step`.
    public func sequence(step: UInt64, _ j: Int) -> UInt64 {
        step * UInt64(globalBatch) + UInt64(rank * batchSize + j)
    }
}
