import TokenfeedCurriculum
import TokenfeedEngine

/// The 64-bit fingerprint of a served stream that Welcome frames and cursors carry: the 64-bit
/// FNV-1a hash of the stream's ``StreamDescription`` text.
///
/// It changes when anything that decides sequences changes (sequence length, seed, packing, a
/// stage's start or mixture, a dataset's shard manifest, the quarantined shards), and never
/// otherwise. The end of the last stage is deliberately not part of it: sequences before the end do
/// not depend on where the run ends, so a curriculum that appends a stage keeps, for the stages it
/// shares, the fingerprint of the shorter one as a *prefix fingerprint* (``StreamDescription``).
public enum StreamFingerprint {
    /// The fingerprint of `stream`, served with `quarantine` left out of it.
    public static func value(of stream: GlobalStream, quarantine: ShardQuarantine = .none) -> UInt64 {
        StreamDescription(stream: stream, quarantine: quarantine).fingerprint
    }
}
