import TokenfeedSystem

/// One dataset of the curriculum as the Welcome lists it: its name and its shard files.
///
/// A batch's provenance names a dataset by its index in the Welcome's list and a shard by its
/// index in that dataset's `shardPaths`, so batches stay compact while a person can still name
/// the file: `shardPaths[i]` is relative to the daemon's data root.
public struct DatasetInfo: Sendable, Hashable {
    /// Longest dataset name in UTF-8 bytes.
    public static let maxNameBytes = 1_024
    /// Longest shard path in UTF-8 bytes.
    public static let maxPathBytes = 4_096
    /// Largest number of shards per dataset.
    public static let maxShards: UInt32 = 1 << 24

    /// Dataset name as in the curriculum (e.g. "fineweb-edu").
    public var name: String
    /// Shard file paths relative to the data root, indexed by provenance `shard_index`.
    public var shardPaths: [String]

    /// Creates a dataset description.
    public init(name: String, shardPaths: [String]) {
        self.name = name
        self.shardPaths = shardPaths
    }

    func encode(into bytes: inout [UInt8]) {
        bytes.appendString16(name, maxBytes: DatasetInfo.maxNameBytes, field: "dataset.name")
        precondition(shardPaths.count <= Int(DatasetInfo.maxShards), "too many shards")
        bytes.appendLE(UInt32(shardPaths.count))
        for path in shardPaths {
            bytes.appendString16(path, maxBytes: DatasetInfo.maxPathBytes, field: "dataset.shard_path")
        }
    }

    static func decode(_ r: inout ByteReader, index i: Int) throws(ProtocolError) -> DatasetInfo {
        let name = try r.string16("datasets[\(i)].name", maxBytes: maxNameBytes)
        let count = try r.count("datasets[\(i)].shard_count", minimumElementSize: 2, range: 0...maxShards)
        var paths: [String] = []
        paths.reserveCapacity(count)
        for j in 0..<count {
            paths.append(try r.string16("datasets[\(i)].shard_paths[\(j)]", maxBytes: maxPathBytes))
        }
        return DatasetInfo(name: name, shardPaths: paths)
    }
}
