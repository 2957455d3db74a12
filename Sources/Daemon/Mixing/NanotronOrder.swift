import TokenfeedCurriculum

/// nanotron's order of a curriculum's global sequences (`--order nanotron`, issue 10.3): which
/// dataset each sequence comes from and which of that dataset's samples it is, as nanotron's
/// `BlendableDataset` and its trainer's stage switches give them.
///
/// - Stage `s` owns global sequences `[firstSequence(s), firstSequence(s+1))` (the same boundaries
///   as ``StreamPlan``). Its sequence `i` is the stage's blended sample `j = i − firstSequence(s)`:
///   nanotron's sampler restarts at 0 in every stage. The dataset is ``NanotronBlend``'s (Megatron's
///   greedy largest error over the stage's float64 weights) and the sample index is the blend's
///   sample index plus the stage's *carry* for that dataset.
/// - The carry reproduces nanotron's trainer: after every step it adds, per `dataset_folder`, the
///   samples of the step's **global** index range `[(step − 1)·GBS, step·GBS)` of the *current*
///   stage's blend — not of the stage-local range the sampler reads. So the carry into stage `s`
///   is `Σ_{t<s} counts_t([firstSequence(t), firstSequence(t+1)))`, while the samples stage `t`
///   really read are `counts_t([0, firstSequence(t+1) − firstSequence(t)))`. The two agree for the
///   first stage and differ by at most one sample per dataset after it: a later stage may read one
///   sample again, or skip one (``drawnBefore`` is the exact count, ``carry`` nanotron's).
/// - A dataset is identified by its identity (nanotron's `dataset_folder`), so the carry follows
///   a folder across stages whatever its read path, and sums over every earlier stage that drew
///   from it.
///
/// Random access costs at most one checkpoint interval of greedy steps (2^20) after the stored
/// counts; walking forwards through a ``NanotronWalker`` costs one greedy step per sequence.
/// Building the order computes each stage's blend up to the end of its global index range (for the
/// carry): SmolLM3's three stages are about 5·10⁹ greedy steps.
///
/// Not thread-safe (the blends cache their counts): one per consumer.
public struct NanotronOrder: Sendable {
    /// Tokens per sequence.
    public let sequenceLength: Int
    /// One past the last global sequence.
    public let totalSequences: UInt64
    /// `firstSequences[s]` for every stage, then `totalSequences`.
    let firstSequences: [UInt64]
    /// Per stage: local dataset (the stage's weights, in file order) → curriculum dataset.
    let datasetsOfStage: [[Int]]
    var blends: [NanotronBlend]
    /// `carry[s][d]`: the sample of curriculum dataset `d` that stage `s`'s blend sample index 0
    /// maps to — nanotron's per-folder offset into stage `s`.
    public let carry: [[UInt64]]
    /// `drawnBefore[s][d]`: how many samples of `d` the stages before `s` really read.
    public let drawnBefore: [[UInt64]]
    /// `drawn[s][d]`: how many samples of `d` stage `s` reads.
    public let drawn: [[UInt64]]

    /// Computes the stages' blends as far as the carry needs (see the type's notes).
    /// - Parameters:
    ///   - checkpointInterval: samples between stored blend counts (tests use small ones).
    ///   - countCache: where each stage's stored counts are read from before its blend is computed,
    ///     and written back to when more of them had to be computed; nil keeps them in memory only.
    public init(curriculum: Curriculum, checkpointInterval: UInt64 = 1 << 20, countCache: (any NanotronBlendCountCache)? = nil) {
        let l = UInt64(curriculum.sequenceLength)
        sequenceLength = curriculum.sequenceLength
        var firsts = curriculum.stages.map { ($0.startToken + l - 1) / l }
        totalSequences = (curriculum.endToken + l - 1) / l
        firsts.append(totalSequences)
        firstSequences = firsts
        let n = curriculum.datasets.count
        var blends: [NanotronBlend] = []
        var carry: [[UInt64]] = [], drawnBefore: [[UInt64]] = [], drawn: [[UInt64]] = []
        var running = [UInt64](repeating: 0, count: n), exact = [UInt64](repeating: 0, count: n)
        datasetsOfStage = curriculum.stages.map { $0.weights.map(\.dataset) }
        for (s, stage) in curriculum.stages.enumerated() {
            var blend = NanotronBlend(written: stage.weights.map(\.written), checkpointInterval: checkpointInterval)
            if let stored = countCache?.storedCounts(for: blend) { blend.adopt(storedCounts: stored) }
            let map = datasetsOfStage[s]
            carry.append(running)
            drawnBefore.append(exact)
            let local = blend.counts(beforeSample: firsts[s + 1] - firsts[s])
            var stageDrawn = [UInt64](repeating: 0, count: n)
            for (k, d) in map.enumerated() { stageDrawn[d] += local[k]; exact[d] += local[k] }
            drawn.append(stageDrawn)
            if s + 1 < curriculum.stages.count {
                let before = blend.counts(beforeSample: firsts[s]), after = blend.counts(beforeSample: firsts[s + 1])
                for (k, d) in map.enumerated() { running[d] += after[k] - before[k] }
            }
            if blend.checkpointsComputed > 0 { countCache?.store(blend) }
            blends.append(blend)
        }
        self.blends = blends
        self.carry = carry
        self.drawnBefore = drawnBefore
        self.drawn = drawn
    }

    /// How many stored blend counts the stages' blends computed with greedy steps when this order
    /// was built (0 when a ``NanotronBlendCountCache`` gave them all).
    public var checkpointsComputed: Int { blends.reduce(0) { $0 + $1.checkpointsComputed } }

    /// The number of stages.
    public var stageCount: Int { blends.count }

    /// The first global sequence of stage `s`; `firstSequence(ofStage: stageCount)` is ``totalSequences``.
    public func firstSequence(ofStage s: Int) -> UInt64 { firstSequences[s] }

    /// The stage global sequence `i` (`< totalSequences`) belongs to.
    public func stageIndex(ofSequence i: UInt64) -> Int {
        precondition(i < totalSequences, "sequence \(i) is past the end of the curriculum (\(totalSequences))")
        return StreamPlan.stage(ofSequence: i, firstSequences: firstSequences)
    }

    /// Per dataset, one past the highest sample index any stage reads: how many samples
    /// (windows) the dataset must hold. With the off-by-one carry this can differ from the
    /// number of samples read.
    public var samplesNeeded: [UInt64] {
        var needed = [UInt64](repeating: 0, count: carry.first?.count ?? 0)
        for s in 0 ..< blends.count {
            for d in datasetsOfStage[s] where drawn[s][d] > 0 {
                needed[d] = max(needed[d], carry[s][d] + drawn[s][d])
            }
        }
        return needed
    }

    /// The stage, dataset and dataset sample index (``SequenceSource/ordinal``: the window in the
    /// dataset's files, counted from 0 over its files in order) of global sequence `i`
    /// (`< totalSequences`). `walker` remembers the blend state after the last answer, so
    /// increasing `i` costs one greedy step per sequence in between.
    public mutating func source(ofSequence i: UInt64, walker: inout NanotronWalker) -> SequenceSource {
        let s = stageIndex(ofSequence: i)
        let j = i - firstSequences[s]
        if walker.stage != s || j < walker.next || j - walker.next >= blends[s].checkpointInterval {
            walker.counts = blends[s].counts(beforeSample: j)
            walker.stage = s
            walker.next = j
        }
        while walker.next < j {
            walker.counts[blends[s].choose(at: walker.next, counts: walker.counts)] += 1
            walker.next += 1
        }
        let local = blends[s].choose(at: j, counts: walker.counts)
        let sample = walker.counts[local]
        walker.counts[local] += 1
        walker.next = j + 1
        let dataset = datasetsOfStage[s][local]
        return SequenceSource(stage: s, dataset: dataset, ordinal: carry[s][dataset] + sample)
    }
}

/// Where a consumer of a ``NanotronOrder`` last was: the stage, the next blended sample and the
/// counts before it.
public struct NanotronWalker: Sendable {
    var stage = -1
    var next: UInt64 = 0
    var counts: [UInt64] = []

    public init() {}
}
