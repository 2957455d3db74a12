import TokenfeedShards

/// A dataset's samples as nanotron reads a datatrove folder (`--order nanotron`): every shard file
/// is cut into windows of `rowTokens` (`L + 1`) tokens at a stride of `rowTokens`, from its first
/// token; the last `T mod rowTokens` tokens of a file of `T` tokens are never read, and no window
/// crosses into the next file. Sample `k` of the dataset is window `k − W_f` of the file `f` with
/// `W_f ≤ k < W_{f+1}`, `W_f` being the windows of the files before `f` in file-name order (the
/// string order of their paths, as datatrove lists them). No epochs: past the last window there
/// is no sample.
public struct NanotronWindows: Sendable {
    /// Tokens per window, `L + 1`.
    public let rowTokens: UInt64
    /// `windowsBefore[f]`: windows in the shards before shard `f`; then the total.
    public let windowsBefore: [UInt64]

    public init(folder: DatasetFolder, rowTokens: Int) {
        self.rowTokens = UInt64(rowTokens)
        var before: [UInt64] = [0]
        before.reserveCapacity(folder.shards.count + 1)
        for s in folder.shards.indices { before.append(before[before.count - 1] + folder.tokenCount(ofShard: s) / UInt64(rowTokens)) }
        windowsBefore = before
    }

    /// The number of samples (windows) of the dataset.
    public var count: UInt64 { windowsBefore[windowsBefore.count - 1] }

    /// The shard holding sample `k` (`< count`) and the sample's first token in that shard.
    public func locate(_ k: UInt64) -> (shard: Int, offset: UInt64) {
        precondition(k < count, "sample \(k) is past the dataset's \(count) windows")
        // The last shard f with windowsBefore[f] <= k (shards without a window are skipped).
        var low = 0, high = windowsBefore.count - 2
        while low < high {
            let mid = (low + high + 1) / 2
            if windowsBefore[mid] <= k { low = mid } else { high = mid - 1 }
        }
        return (low, (k - windowsBefore[low]) * rowTokens)
    }
}
