/// Which rule decides the dataset, and the dataset sample, of every global sequence
/// (`--order`, `order:` in the daemon's config file; docs/CURRICULUM.md, "Orders").
public enum StreamOrder: String, Sendable, Hashable, CaseIterable {
    /// tokenfeed's own: each stage's quota schedule over integer weight units (every prefix within
    /// one sequence of the weights), read positions carried over exactly, `packing` and `shuffle` as
    /// the curriculum says, epochs when a dataset runs out. The default.
    case quota
    /// nanotron's sample stream, bit for bit: Megatron's greedy blend over the float64 weights,
    /// windows of `L + 1` tokens at stride `L + 1` inside each shard file, nanotron's per-folder
    /// position carry-over between stages (with its off-by-one), no epochs.
    case nanotron
}

/// A nanotron config's batch geometry: a training step is `dp × microBatchSize × accumulation`
/// sequences; data-parallel rank `r` reads micro-batch `m` of step `s` as the `microBatchSize`
/// sequences from `s·GBS + m·microBatchSize·dp + r·microBatchSize`.
public struct NanotronBatch: Sendable, Hashable {
    /// `parallelism.dp`.
    public var dp: Int
    /// `tokens.micro_batch_size`.
    public var microBatchSize: Int
    /// `tokens.batch_accumulation_per_replica`.
    public var accumulation: Int

    public init(dp: Int, microBatchSize: Int, accumulation: Int) {
        self.dp = dp
        self.microBatchSize = microBatchSize
        self.accumulation = accumulation
    }

    /// Sequences per training step (nanotron's global batch size).
    public var globalBatch: Int { dp * microBatchSize * accumulation }
}
