import TokenfeedEngine

/// Where a stream position is in the curriculum: its stage and that stage's progress, and for every
/// dataset the sequences drawn from it before the position, per stage and in all, and the epoch its
/// read position is in. A pure function of the plan and the position, so it counts across daemon
/// restarts (a resumed session starts at its cursor). Computed when Stats or the metrics are asked
/// for, never on the batch path.
struct StreamProgress {
    /// The position (global sequence index, clamped to the curriculum's end).
    let position: UInt64
    /// The stage the position is in (the last stage at the end).
    let stage: Int
    /// Sequences of each dataset before the position (`counts[dataset]`).
    let counts: [UInt64]
    /// Sequences of each dataset before the position within each stage (`countsInStage[stage][dataset]`).
    let countsInStage: [[UInt64]]
    /// Sequences before the position within each stage.
    let sequencesInStage: [UInt64]
    /// Sequences of each stage.
    let stageLengths: [UInt64]

    init(stream: GlobalStream, position: UInt64) {
        let plan = stream.plan
        self.position = min(position, plan.totalSequences)
        stage = plan.stageIndex(ofSequence: min(self.position, plan.totalSequences &- 1))
        counts = plan.counts(beforeSequence: self.position)
        var perStage: [[UInt64]] = []
        var sequences: [UInt64] = []
        var lengths: [UInt64] = []
        var before = plan.counts(beforeSequence: 0)
        for s in stream.curriculum.stages.indices {
            let first = plan.firstSequence(ofStage: s)
            let end = s + 1 < stream.curriculum.stages.count ? plan.firstSequence(ofStage: s + 1) : plan.totalSequences
            let upTo = max(first, min(self.position, end))
            let after = upTo == self.position ? counts : plan.counts(beforeSequence: upTo)
            perStage.append(zip(after, before).map { $0 - $1 })
            sequences.append(upTo - first)
            lengths.append(end - first)
            before = after
        }
        countsInStage = perStage
        sequencesInStage = sequences
        stageLengths = lengths
    }

    /// The fraction of stage `s`'s sequences before the position (0 before it, 1 after it).
    func stageProgress(_ s: Int) -> Double {
        stageLengths[s] == 0 ? 1 : Double(sequencesInStage[s]) / Double(stageLengths[s])
    }

    /// The epoch dataset `d`'s read position is in (0: first pass): its tokens consumed over its tokens per epoch.
    func epoch(ofDataset d: Int, stream: GlobalStream, sequenceLength: UInt32) -> UInt32 {
        let epochTokens = stream.datasets[d].tokenCount
        let consumed = counts[d] &* UInt64(sequenceLength)
        return UInt32(truncatingIfNeeded: epochTokens == 0 ? 0 : consumed / epochTokens)
    }
}
