/// Walks consecutive global sequences, giving each one's ``SequenceSource`` in O(1) and
/// without allocation (the engine walks steps in order).
public struct StreamCursor: IteratorProtocol, Sendable {
    let plan: StreamPlan
    /// The global index of the sequence `next()` returns.
    public private(set) var position: UInt64
    var stage: Int
    var slot: Int
    var stageEnd: UInt64
    /// Per dataset: how many sequences came from it before ``position``.
    public private(set) var counts: [UInt64]

    /// A cursor at global sequence `i` (`≤ totalSequences`).
    public init(plan: StreamPlan, startingAt i: UInt64) {
        self.plan = plan
        position = i
        counts = plan.counts(beforeSequence: i)
        if i < plan.totalSequences {
            stage = plan.stageIndex(ofSequence: i)
            let schedule = plan.schedules[stage]
            slot = Int((i - plan.firstSequences[stage]) % UInt64(schedule.period))
            stageEnd = plan.firstSequences[stage + 1]
        } else {
            stage = plan.stageCount
            slot = 0
            stageEnd = i
        }
    }

    /// The source of the sequence at ``position``, then advances; nil at the end of the curriculum.
    public mutating func next() -> SequenceSource? {
        guard position < plan.totalSequences else { return nil }
        let schedule = plan.schedules[stage]
        let dataset = plan.datasetsOfStage[stage][schedule.choice(at: slot)]
        let result = SequenceSource(stage: stage, dataset: dataset, ordinal: counts[dataset])
        counts[dataset] += 1
        position += 1
        slot += 1
        if slot == schedule.period { slot = 0 }
        if position == stageEnd && position < plan.totalSequences {
            stage += 1
            slot = 0
            stageEnd = plan.firstSequences[stage + 1]
        }
        return result
    }
}
