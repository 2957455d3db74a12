/// Where packing a shard can start other than at its first group: the rows before every
/// `groupsPerCheckpoint`-th group of the shard (group `j · groupsPerCheckpoint`, `j = 1, 2, …`, while
/// it exists). With them, finding row `q` of a shard packs at most `groupsPerCheckpoint` groups —
/// a bounded number of documents, wherever the row lies in the shard — instead of every group before it.
///
/// The spacing is the most whole groups of `lookahead` documents that fit in
/// ``documentsPerCheckpoint`` documents (at least one group), so a checkpoint costs 8 bytes per
/// 4,096 documents and a lookup packs at most 4,096 documents (or one group, when the look-ahead is
/// larger). A shard of at most that many documents has no checkpoint at all.
enum BestFitCheckpoints {
    /// Documents between checkpoints, at most (unless one group holds more).
    static let documentsPerCheckpoint = 4096

    /// Groups between checkpoints for groups of `lookahead` documents.
    static func groupsPerCheckpoint(lookahead: Int, documents: Int = documentsPerCheckpoint) -> Int {
        max(1, documents / max(1, lookahead))
    }

    /// How many checkpoints a shard of `documents` documents has.
    static func count(documents: Int, lookahead: Int, groupsPerCheckpoint: Int) -> Int {
        let groups = (documents + lookahead - 1) / lookahead
        return groups == 0 ? 0 : (groups - 1) / groupsPerCheckpoint
    }
}
