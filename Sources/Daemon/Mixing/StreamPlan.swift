import TokenfeedCurriculum

/// The whole global stream of a curriculum, as pure functions of the sequence index.
///
/// Global sequence `i` covers tokens `[i·L, (i+1)·L)` (`L` = sequence length). Stage `s` owns
/// sequences `[firstSequence(s), firstSequence(s+1))` with `firstSequence(s) = ⌈start_s / L⌉`:
/// the first sequence whose first token is at or past the stage's start. Within a stage, the
/// dataset of each sequence follows the stage's ``StageSchedule`` (every prefix within one
/// sequence of the weights), and per-dataset positions carry over from stage to stage.
///
/// Every lookup is `O(log stages + stride)` — a binary search and a scan of at most 1,024
/// schedule slots — whatever `i` is (2.7·10⁹ for SmolLM3).
public struct StreamPlan: Sendable {
    /// Tokens per sequence.
    public let sequenceLength: Int
    /// The number of datasets in the curriculum.
    public let datasetCount: Int
    /// One past the last sequence: `⌈endToken / L⌉`.
    public let totalSequences: UInt64
    /// `firstSequences[s]` for every stage, then `totalSequences`.
    let firstSequences: [UInt64]
    let schedules: [StageSchedule]
    /// Per stage: local dataset → curriculum dataset.
    let datasetsOfStage: [[Int]]
    /// Per stage: curriculum dataset → local dataset, or -1.
    let localIndex: [[Int]]
    /// Per stage (and once more for the end): sequences of every dataset before the stage.
    let countsBeforeStage: [[UInt64]]

    /// Builds the plan: one schedule period per stage (`Q` slots, at most 2^24).
    public init(curriculum: Curriculum) {
        let l = UInt64(curriculum.sequenceLength)
        sequenceLength = curriculum.sequenceLength
        datasetCount = curriculum.datasets.count
        var firsts = curriculum.stages.map { ($0.startToken + l - 1) / l }
        let total = (curriculum.endToken + l - 1) / l
        firsts.append(total)
        totalSequences = total
        firstSequences = firsts

        var schedules: [StageSchedule] = []
        var datasetsOfStage: [[Int]] = []
        var localIndex: [[Int]] = []
        var countsBeforeStage: [[UInt64]] = [[UInt64](repeating: 0, count: curriculum.datasets.count)]
        for (s, stage) in curriculum.stages.enumerated() {
            precondition(firsts[s + 1] > firsts[s], "every stage holds at least one sequence")
            let seed = StableHash.combine(curriculum.seed, UInt64(s), 0x7469_6562_7265_616b) // "tiebreak"
            let schedule = StageSchedule(units: stage.weights.map(\.units), tieBreakSeed: seed)
            let map = stage.weights.map(\.dataset)
            var inverse = [Int](repeating: -1, count: curriculum.datasets.count)
            for (local, dataset) in map.enumerated() { inverse[dataset] = local }
            var counts = countsBeforeStage[s]
            let length = firsts[s + 1] - firsts[s]
            let periods = length / UInt64(schedule.period)
            for (local, dataset) in map.enumerated() { counts[dataset] += periods * schedule.units[local] }
            schedule.addCounts(before: Int(length % UInt64(schedule.period)), into: &counts, map: map)
            schedules.append(schedule)
            datasetsOfStage.append(map)
            localIndex.append(inverse)
            countsBeforeStage.append(counts)
        }
        self.schedules = schedules
        self.datasetsOfStage = datasetsOfStage
        self.localIndex = localIndex
        self.countsBeforeStage = countsBeforeStage
    }

    /// The number of stages.
    public var stageCount: Int { schedules.count }

    /// The first global sequence of stage `s`; `firstSequence(ofStage: stageCount)` is
    /// ``totalSequences``.
    public func firstSequence(ofStage s: Int) -> UInt64 { firstSequences[s] }

    /// The stage global sequence `i` (`< totalSequences`) belongs to.
    public func stageIndex(ofSequence i: UInt64) -> Int {
        precondition(i < totalSequences, "sequence \(i) is past the end of the curriculum (\(totalSequences))")
        return Self.stage(ofSequence: i, firstSequences: firstSequences)
    }

    /// The last stage `s` with `firstSequences[s] ≤ i`, by binary search (`firstSequences` holds every
    /// stage's first sequence, then the end).
    static func stage(ofSequence i: UInt64, firstSequences: [UInt64]) -> Int {
        var low = 0, high = firstSequences.count - 2
        while low < high {
            let mid = (low + high + 1) / 2
            if firstSequences[mid] <= i { low = mid } else { high = mid - 1 }
        }
        return low
    }

    /// The stage, dataset and per-dataset ordinal of global sequence `i` (`< totalSequences`).
    public func source(ofSequence i: UInt64) -> SequenceSource {
        let s = stageIndex(ofSequence: i)
        let schedule = schedules[s]
        let j = i - firstSequences[s]
        let period = UInt64(schedule.period)
        let slot = Int(j % period)
        let local = schedule.choice(at: slot)
        let dataset = datasetsOfStage[s][local]
        let ordinal = countsBeforeStage[s][dataset] + (j / period) * schedule.units[local]
            + schedule.count(of: local, before: slot)
        return SequenceSource(stage: s, dataset: dataset, ordinal: ordinal)
    }

    /// How many of the global sequences before `i` (`≤ totalSequences`) came from each dataset.
    public func counts(beforeSequence i: UInt64) -> [UInt64] {
        precondition(i <= totalSequences, "sequence \(i) is past the end of the curriculum (\(totalSequences))")
        if i == totalSequences { return countsBeforeStage[schedules.count] }
        let s = stageIndex(ofSequence: i)
        var counts = countsBeforeStage[s]
        let schedule = schedules[s]
        let j = i - firstSequences[s]
        let period = UInt64(schedule.period)
        for (local, dataset) in datasetsOfStage[s].enumerated() { counts[dataset] += (j / period) * schedule.units[local] }
        schedule.addCounts(before: Int(j % period), into: &counts, map: datasetsOfStage[s])
        return counts
    }

    /// How many of the global sequences before `i` (`≤ totalSequences`) came from `dataset`.
    public func count(ofDataset dataset: Int, beforeSequence i: UInt64) -> UInt64 {
        precondition(i <= totalSequences, "sequence \(i) is past the end of the curriculum (\(totalSequences))")
        if i == totalSequences { return countsBeforeStage[schedules.count][dataset] }
        let s = stageIndex(ofSequence: i)
        var count = countsBeforeStage[s][dataset]
        let local = localIndex[s][dataset]
        guard local >= 0 else { return count }
        let schedule = schedules[s]
        let j = i - firstSequences[s]
        let period = UInt64(schedule.period)
        count += (j / period) * schedule.units[local] + schedule.count(of: local, before: Int(j % period))
        return count
    }

    /// The global index of `dataset`'s sequence number `ordinal` (0-based), or nil if the
    /// curriculum draws fewer sequences from it.
    public func sequence(ofOrdinal ordinal: UInt64, dataset: Int) -> UInt64? {
        for s in 0..<schedules.count {
            let before = countsBeforeStage[s][dataset], after = countsBeforeStage[s + 1][dataset]
            guard ordinal >= before && ordinal < after else { continue }
            let local = localIndex[s][dataset]
            let schedule = schedules[s]
            let within = ordinal - before
            let units = schedule.units[local]
            let slot = schedule.slot(ofOccurrence: within % units, of: local)
            return firstSequences[s] + (within / units) * UInt64(schedule.period) + UInt64(slot)
        }
        return nil
    }

    /// The total number of sequences the curriculum draws from each dataset.
    public var totalCounts: [UInt64] { countsBeforeStage[schedules.count] }

    /// The number of sequences stage `s` draws from each dataset.
    public func counts(inStage s: Int) -> [UInt64] {
        zip(countsBeforeStage[s + 1], countsBeforeStage[s]).map { $0 - $1 }
    }

    /// The schedule of stage `s` (its local datasets are the stage's weights, in order).
    public func schedule(ofStage s: Int) -> StageSchedule { schedules[s] }

    /// A cursor that walks the stream from sequence `i` on, without allocating per sequence.
    public func cursor(startingAt i: UInt64 = 0) -> StreamCursor { StreamCursor(plan: self, startingAt: i) }
}
