import TokenfeedMixing
import TokenfeedSystem
/// The shards a daemon quarantined at startup (``CorruptDataPolicy/quarantine``), and their digest.
///
/// The set is a function of the shard data alone (a shard is in it exactly when ``ShardVerifier``
/// finds a problem in it), so every node's daemon over the same data computes the same set and
/// serves the same stream. Quarantine is decided once, before the socket listens, and holds for the
/// whole stream: the digest is the same in every cursor the daemon makes.
///
/// The digest is the 64-bit FNV-1a hash of the UTF-8 text
/// ```
/// tokenfeed-quarantine-v1
/// shard=<dataset index>:<shard path relative to the data root>
/// …one line per quarantined shard, datasets in curriculum order, shards in file-name order
/// ```
/// or 0 when no shard is quarantined (a hash that happens to be 0 is written as 1).
public struct ShardQuarantine: Sendable, Hashable {
    /// One quarantined shard.
    public struct Entry: Sendable, Hashable {
        /// Index of its dataset in the curriculum.
        public var dataset: Int
        /// Its path relative to the data root, as provenance would name it.
        public var path: String
        /// The first problem verification found in it (file, frame and what is wrong).
        public var problem: String

        public init(dataset: Int, path: String, problem: String) {
            self.dataset = dataset
            self.path = path
            self.problem = problem
        }
    }

    /// The quarantined shards, datasets in curriculum order, shards in file-name order.
    public let entries: [Entry]
    /// The digest cursors carry: 0 when `entries` is empty.
    public let digest: UInt64

    /// No shard quarantined.
    public static let none = ShardQuarantine(entries: [])

    /// The quarantine of `entries` (given in curriculum and file-name order).
    public init(entries: [Entry]) {
        self.entries = entries
        guard !entries.isEmpty else {
            digest = 0
            return
        }
        var text = "tokenfeed-quarantine-v1\n"
        for entry in entries { text += "shard=\(entry.dataset):\(entry.path)\n" }
        let hash = FNV1a64.hash(text)
        digest = hash == 0 ? 1 : hash
    }

    /// Whether no shard is quarantined.
    public var isEmpty: Bool { entries.isEmpty }

    /// How many shards of dataset `d` are quarantined.
    public func count(dataset d: Int) -> Int { entries.reduce(0) { $0 + ($1.dataset == d ? 1 : 0) } }

    /// The quarantined paths, comma-separated, at most `limit` of them (then "and N more").
    public func pathList(limit: Int = 8) -> String {
        let shown = entries.prefix(limit).map(\.path).joined(separator: ", ")
        return entries.count > limit ? shown + " and \(entries.count - limit) more" : shown
    }
}
