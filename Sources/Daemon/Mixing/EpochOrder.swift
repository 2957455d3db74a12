import TokenfeedSystem

/// The order of a dataset's shards in each epoch.
///
/// A dataset's stream is its shards concatenated. Epoch 0 reads them in manifest order (sorted
/// by file name); when the stream runs out, epoch `e ≥ 1` reads them in a permutation seeded by
/// the curriculum seed, the dataset's identity and `e` — the same on every machine.
public enum EpochOrder {
    /// The shard order of `epoch`: indices into the manifest's shard list.
    ///
    /// - Parameters:
    ///   - datasetName: the dataset's identity in the curriculum (``DatasetSpec/identity``: its
    ///     name, or a nanotron config's `dataset_folder`), the same in every stage file.
    ///   - epoch: 0 for the first pass over the data.
    ///   - shardCount: how many shards the dataset has.
    ///   - seed: the curriculum's seed.
    public static func shardOrder(datasetName: String, epoch: UInt64, shardCount: Int, seed: UInt64) -> [Int] {
        precondition(shardCount >= 0, "shard count must not be negative")
        if epoch == 0 || shardCount < 2 { return Array(0..<shardCount) }
        var generator = SplitMix64(seed: StableHash.combine(seed, FNV1a64.hash(datasetName), epoch))
        return generator.permutation(shardCount)
    }

    /// How many sequences one epoch of a dataset of `tokens` tokens yields when concatenated
    /// documents are cut into sequences of `sequenceLength` (each reads `sequenceLength + 1`
    /// tokens, consecutive sequences overlapping by one token, as nanotron reads them).
    public static func sequencesPerEpoch(tokens: UInt64, sequenceLength: Int) -> UInt64 {
        precondition(sequenceLength > 0, "sequence length must be positive")
        guard tokens > UInt64(sequenceLength) else { return 0 }
        return (tokens - 1) / UInt64(sequenceLength)
    }
}
