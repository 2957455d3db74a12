import Foundation
import Testing
import TestSupport
import TokenfeedCurriculum
import TokenfeedMixing

/// `--order nanotron`'s sequence → (stage, dataset, sample) map over the official SmolLM3 stage-3 file,
/// scaled down to 6-sequence steps (stage 2 at step 41, stage 3 at step 67, end after step 90) so that
/// the stage carry can be checked against a plain greedy loop written here. The bytes are checked
/// against nanotron's and datatrove's code paths in clients/python/tests/test_nanotron_order.py.
@Suite struct NanotronOrderTests {
    static let gbs: UInt64 = 6

    func scaled() throws -> Curriculum {
        let folder = makeTemporaryFolder()
        defer { removeTemporaryFolder(folder) }
        var text = try String(contentsOfFile: Fixtures.smolLM3Stage3, encoding: .utf8)
        for (from, to) in [("start_training_step: 3450001", "start_training_step: 41"), ("start_training_step: 4198001", "start_training_step: 67"),
                           ("train_steps: 4720000", "train_steps: 90"), ("  dp: 192", "  dp: 2")] {
            #expect(text.contains(from))
            text = text.replacingOccurrences(of: from, with: to)
        }
        var curriculum = try CurriculumLoader.load(path: write(text, to: folder, "stage3.yaml"), dataRoot: nil)
        curriculum.order = .nanotron
        return curriculum
    }

    /// Megatron's greedy over `weights` (already normalised), as counts after each of `n` samples.
    func greedy(_ weights: [Double], _ n: Int) -> [[UInt64]] {
        var counts = [UInt64](repeating: 0, count: weights.count)
        var out = [counts]
        for j in 0 ..< n {
            let x = Double(max(j, 1))
            var best = 0
            for d in 1 ..< weights.count where weights[d] * x - Double(counts[d]) > weights[best] * x - Double(counts[best]) { best = d }
            counts[best] += 1
            out.append(counts)
        }
        return out
    }

    @Test func stagesCarryNanotronsCountsOverGlobalIndexRanges() throws {
        let curriculum = try scaled()
        #expect(curriculum.nanotronBatch == NanotronBatch(dp: 2, microBatchSize: 3, accumulation: 1))
        let order = NanotronOrder(curriculum: curriculum, checkpointInterval: 64)
        let firsts: [UInt64] = [0, 40 * Self.gbs, 66 * Self.gbs, 90 * Self.gbs]
        #expect((0 ... 3).map { order.firstSequence(ofStage: $0) } == firsts)
        var running = [UInt64](repeating: 0, count: curriculum.datasets.count)
        var exact = running
        var differs = 0
        for (s, stage) in curriculum.stages.enumerated() {
            #expect(order.carry[s] == running, "stage \(s + 1): carry")
            #expect(order.drawnBefore[s] == exact, "stage \(s + 1): samples read before")
            differs += zip(order.carry[s], order.drawnBefore[s]).filter { $0 != $1 }.count
            let counts = greedy(NanotronBlend(written: stage.weights.map(\.written)).weights, Int(firsts[s + 1]))
            let length = Int(firsts[s + 1] - firsts[s])
            for (k, weight) in stage.weights.enumerated() {
                running[weight.dataset] += counts[Int(firsts[s + 1])][k] - counts[Int(firsts[s])][k]
                exact[weight.dataset] += counts[length][k]
                #expect(order.drawn[s][weight.dataset] == counts[length][k])
            }
        }
        #expect(differs > 0, "nanotron's off-by-one carry shows at this scale")
        #expect(order.carry[0].allSatisfy { $0 == 0 })
    }

    @Test func walkingForwardEqualsRandomAccess() throws {
        let curriculum = try scaled()
        var walking = NanotronOrder(curriculum: curriculum, checkpointInterval: 64)
        var walker = NanotronWalker()
        let all = (0 ..< walking.totalSequences).map { walking.source(ofSequence: $0, walker: &walker) }
        // Per dataset, the samples of a stage are consecutive from the stage's carry.
        for s in 0 ..< walking.stageCount {
            let first = walking.firstSequence(ofStage: s), end = walking.firstSequence(ofStage: s + 1)
            var next = walking.carry[s]
            for i in first ..< end {
                let source = all[Int(i)]
                #expect(source.stage == s)
                #expect(source.ordinal == next[source.dataset], "sequence \(i)")
                next[source.dataset] += 1
            }
        }
        // Random access (jumps back and forth, fresh walkers, another checkpoint interval) agrees.
        var jumping = NanotronOrder(curriculum: curriculum, checkpointInterval: 7)
        var rng = SplitMix64(seed: 3)
        for _ in 0 ..< 300 {
            let i = rng.next() % walking.totalSequences
            var fresh = NanotronWalker()
            #expect(jumping.source(ofSequence: i, walker: &fresh) == all[Int(i)], "sequence \(i)")
            #expect(jumping.source(ofSequence: i, walker: &walker) == all[Int(i)], "sequence \(i), reused walker")
        }
        // Samples needed: one past the highest sample read.
        var needed = [UInt64](repeating: 0, count: curriculum.datasets.count)
        for source in all { needed[source.dataset] = max(needed[source.dataset], source.ordinal + 1) }
        #expect(walking.samplesNeeded == needed)
    }

    @Test func theOrderIsPartOfTheCurriculumFingerprint() throws {
        var curriculum = try scaled()
        let nanotron = curriculum.fingerprint
        curriculum.order = .quota
        #expect(curriculum.fingerprint != nanotron)
    }
}
