import TokenfeedEngine

/// The 64-bit fingerprint of a served stream that Welcome frames and cursors carry.
///
/// It is the 64-bit FNV-1a hash (offset basis 0xcbf29ce484222325, prime 0x100000001b3) of the UTF-8
/// text
/// ```
/// tokenfeed-stream-v1
/// curriculum=<the curriculum's 128-bit fingerprint, 32 hex digits>
/// shard=<dataset index>:<shard path relative to the data root>:<token count>:<document count>
/// …one shard line per shard, datasets in curriculum order, shards in file-name order
/// quarantine=<the quarantine digest, 16 hex digits>     (only when shards were quarantined)
/// ```
/// so it changes when the curriculum changes anything that shapes the stream (sequence length,
/// seed, packing, datasets, stage boundaries, weights) or when a dataset's shard manifest changes
/// (a shard added, removed, renamed or rewritten with other documents) or the set of quarantined
/// shards changes (``ShardQuarantine``; quarantined shards have no shard line), and never otherwise.
public enum StreamFingerprint {
    /// The fingerprint of `stream`, served with `quarantine` left out of it.
    public static func value(of stream: GlobalStream, quarantine: ShardQuarantine = .none) -> UInt64 {
        var text = "tokenfeed-stream-v1\ncurriculum=\(stream.curriculum.fingerprint)\n"
        for d in stream.datasets.indices {
            for (s, shard) in stream.datasets[d].shards.enumerated() {
                text += "shard=\(d):\(stream.shardName(dataset: d, shard: s)):\(shard.metadata.tokenCount):\(shard.metadata.documentCount)\n"
            }
        }
        if !quarantine.isEmpty { text += "quarantine=\(hex16(quarantine.digest))\n" }
        return fnv1a64(text.utf8)
    }

    /// 64-bit FNV-1a.
    static func fnv1a64(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }
}
