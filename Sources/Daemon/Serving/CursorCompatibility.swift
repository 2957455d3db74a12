import TokenfeedMixing
import TokenfeedSystem

/// Whether a cursor made for one stream resumes exactly on another: the question a run asks when it
/// restarts from a checkpoint with the next stage file (SmolLM3: `stage1_8T.yaml`, then
/// `stage2_8T_9T.yaml`, then `stage3_9T_11T.yaml`).
///
/// A cursor at global sequence `n` resumes exactly when the sequences before `n` are the same under
/// both streams. Its fingerprint says which stream it was made for: if it is this stream's, or this
/// stream's *prefix fingerprint* over its first `k` stages (``StreamDescription``: the same
/// curriculum cut after stage `k`, with the same shards), the streams agree on every sequence before
/// stage `k + 1` starts here, and the cursor is accepted when `n` is not past that start.
/// Otherwise it is refused, naming the first difference when the cursor's stream is known (a
/// record in the daemon's state directory, or the previous curriculum given to
/// `tokenfeed cursor check`).
public enum CursorCompatibility: Sendable, Equatable {
    /// The cursor was made for this very stream.
    case same
    /// The cursor's stream is this one cut after `sharedStages` stages; every sequence before
    /// `agreesBefore` is the same in both, and the cursor is not past it.
    case prefix(sharedStages: Int, agreesBefore: UInt64)
    /// The cursor cannot resume here; `reason` says why, naming the first difference where known.
    case incompatible(reason: String)

    /// Whether a cursor with `fingerprint` at `nextSequence` resumes exactly on the stream `served`
    /// (planned by `plan`). `previous`: the cursor's stream, when known, to name a difference.
    public static func check(fingerprint: UInt64, nextSequence: UInt64, served: StreamDescription, plan: StreamPlan,
                             previous: StreamDescription? = nil) -> CursorCompatibility {
        if fingerprint == served.fingerprint { return .same }
        if let k = served.stagesSharing(fingerprint: fingerprint) {
            let boundary = plan.firstSequence(ofStage: k)
            if nextSequence <= boundary { return .prefix(sharedStages: k, agreesBefore: boundary) }
            return .incompatible(reason:
                "the cursor's stream is this curriculum's first \(k) stage\(k == 1 ? "" : "s") (up to '\(served.stageNames[k - 1])'), "
                + "which agree with this stream only before sequence \(boundary), where stage \(k + 1) ('\(served.stageNames[k])') starts "
                + "(token \(boundary * UInt64(plan.sequenceLength))); the cursor is at sequence \(nextSequence), past it: there the cursor's "
                + "stream was still in stage \(k) ('\(served.stageNames[k - 1])'), so the sequences before the cursor differ")
        }
        if let previous {
            if previous.fingerprint != fingerprint {
                return .incompatible(reason: "the cursor's fingerprint 0x\(Hex.padded(fingerprint)) is not the given previous stream's "
                                     + "(0x\(Hex.padded(previous.fingerprint))): the cursor was made for yet another stream")
            }
            if let difference = previous.firstDifference(to: served) {
                return .incompatible(reason: "the streams differ before the cursor: first difference at \(difference)")
            }
            return .incompatible(reason: "this stream has fewer stages than the cursor's stream (\(served.stages.count) against "
                                 + "\(previous.stages.count)); a cursor resumes only on a curriculum that keeps every stage it was made under")
        }
        return .incompatible(reason:
            "the cursor was made for stream fingerprint 0x\(Hex.padded(fingerprint)); this daemon serves 0x\(Hex.padded(served.fingerprint)), and no "
            + "prefix of its stages has the cursor's fingerprint (another sequence length, seed, packing, stage start or mixture, or shard "
            + "manifest); `tokenfeed cursor check --cursor C --curriculum NEW --previous OLD` names the first difference")
    }
}
