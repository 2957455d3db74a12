import Testing
import TokenfeedCurriculum
import TokenfeedMixing

/// The heap-based ``StageSchedule`` (O(Q log k)) picks exactly what the rule as documented picks
/// when every slot scans all datasets (the O(Q·k) form it replaced): the same stream, so cursors
/// and dumps made before stay valid.
@Suite struct ScheduleReferenceTests {
    /// The rule by a full scan per slot, as StageSchedule computed it before.
    static func referenceChoices(units: [UInt64], tieBreakSeed: UInt64) -> [Int] {
        let k = units.count
        let q = Int(units.reduce(0, +))
        let positive = units.indices.filter { units[$0] > 0 }
        if positive.count == 1 { return [Int](repeating: positive[0], count: q) }
        var generator = SplitMix64(seed: tieBreakSeed)
        var rank = [Int](repeating: 0, count: k)
        for (position, dataset) in generator.permutation(k).enumerated() { rank[dataset] = position }
        let m = UInt128(2 * (positive.count - 1)), bigQ = UInt128(q)
        func release(_ c: UInt64, _ w: UInt64) -> UInt64 {
            let numerator = bigQ * (m * UInt128(c) + 1), denominator = m * UInt128(w)
            return UInt64((numerator + denominator - 1) / denominator)
        }
        var releases = [UInt64](repeating: .max, count: k), keys = [UInt128](repeating: 0, count: k)
        var counts = [UInt64](repeating: 0, count: k)
        for d in positive { releases[d] = release(0, units[d]); keys[d] = m - 1 }
        var choices: [Int] = []
        for slot in 0..<q {
            let t = UInt64(slot + 1)
            var best = -1
            for d in positive where releases[d] <= t {
                if best < 0 { best = d; continue }
                let lhs = keys[d] * UInt128(units[best]), rhs = keys[best] * UInt128(units[d])
                if lhs < rhs || (lhs == rhs && rank[d] < rank[best]) { best = d }
            }
            choices.append(best)
            counts[best] += 1
            releases[best] = release(counts[best], units[best])
            keys[best] = m * UInt128(counts[best]) + m - 1
        }
        return choices
    }

    @Test func randomWeightsGiveTheReferenceChoices() {
        var generator = SplitMix64(seed: 7)
        for trial in 0..<200 {
            let k = 1 + Int(generator.next(below: 40))
            let units = (0..<k).map { _ in generator.next(below: 4) == 0 ? 0 : 1 + generator.next(below: 300) }
            guard units.contains(where: { $0 > 0 }) else { continue }
            let schedule = StageSchedule(units: units, tieBreakSeed: UInt64(trial))
            let got = (0..<schedule.period).map { schedule.choice(at: $0) }
            #expect(got == Self.referenceChoices(units: units, tieBreakSeed: UInt64(trial)), "units \(units)")
        }
    }

    @Test(arguments: 0..<3)
    func smolLM3StagesGiveTheReferenceChoices(stage: Int) {
        let weights = QuotaScheduleTests.smolLM3.stages[stage].weights.map(\.units)
        let schedule = StageSchedule(units: weights, tieBreakSeed: 99)
        let got = (0..<schedule.period).map { schedule.choice(at: $0) }
        #expect(got == Self.referenceChoices(units: weights, tieBreakSeed: 99))
    }
}
