/// Where a stream's bestfit row counts came from so far (``GlobalStream/bestFitCountStatistics``):
/// read from the cache directory, or counted from the shards' metadata in this process.
public struct BestFitCountStatistics: Sendable, Hashable {
    /// Shards of all the curriculum's datasets.
    public var shards: Int
    /// Shards whose count was read from the cache directory.
    public var shardsFromCache: Int
    /// Shards counted (all their groups packed) in this process.
    public var shardsCounted: Int
    /// Documents of the shards counted.
    public var documentsCounted: Int

    public init(shards: Int, shardsFromCache: Int, shardsCounted: Int, documentsCounted: Int) {
        self.shards = shards
        self.shardsFromCache = shardsFromCache
        self.shardsCounted = shardsCounted
        self.documentsCounted = documentsCounted
    }
}
