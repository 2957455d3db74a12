import Testing
import TokenfeedCurriculum
import TokenfeedMixing

@Suite struct QuotaScheduleTests {
    static let smolLM3 = try! CurriculumLoader.load(path: Fixtures.smolLM3Stage3, dataRoot: nil)

    @Test(arguments: 0..<3)
    func smolLM3StagesKeepEveryPrefixWithinOneSequence(stage: Int) {
        let curriculum = Self.smolLM3
        let plan = StreamPlan(curriculum: curriculum)
        let units = curriculum.stages[stage].weights.map(\.units)
        var checker = QuotaChecker(units: units)
        // 4 million sequences from the start of the stage: about 40 periods.
        var cursor = plan.cursor(startingAt: plan.firstSequence(ofStage: stage))
        let local = Dictionary(uniqueKeysWithValues: curriculum.stages[stage].weights.enumerated().map { ($1.dataset, $0) })
        for _ in 0..<4_000_000 {
            let source = cursor.next()!
            #expect(source.stage == stage)
            checker.record(local[source.dataset]!)
        }
        checker.finish()
        #expect(checker.violations == 0)
        #expect(checker.worstDeviation < 1)
    }

    @Test func periodEndsWithEveryDatasetAtItsWeight() {
        let units: [UInt64] = [333, 370, 20, 1, 4, 16, 0, 256]
        let schedule = StageSchedule(units: units, tieBreakSeed: 1)
        #expect(schedule.period == units.reduce(0, +))
        for (d, u) in units.enumerated() {
            #expect(schedule.count(of: d, before: schedule.period) == u)
        }
    }

    @Test func randomWeightsMeetTijdemansBoundOverWholePeriods() {
        var generator = SplitMix64(seed: 42)
        var checked = 0
        for trial in 0..<300 {
            let k = 2 + Int(generator.next(below: 69))          // 2...70 datasets
            var units: [UInt64] = []
            for _ in 0..<k {
                switch generator.next(below: 4) {
                case 0: units.append(1 + generator.next(below: 3))          // tiny
                case 1: units.append(generator.next(below: 50))             // small, maybe zero
                default: units.append(1 + generator.next(below: 1_000))     // large
                }
            }
            if units.allSatisfy({ $0 == 0 }) { units[0] = 1 }
            let schedule = StageSchedule(units: units, tieBreakSeed: UInt64(trial))
            var checker = QuotaChecker(units: units)
            // Two periods, to cross the wrap-around.
            for slot in 0..<(2 * schedule.period) { checker.record(schedule.choice(at: slot % schedule.period)) }
            checker.finish()
            #expect(checker.violations == 0, "weights \(units)")
            checked += 2 * schedule.period
        }
        #expect(checked > 1_000_000)
    }

    @Test func allDatasetsCheckedAfterEveryPrefixOnSmallCases() {
        // The brute-force check (every dataset after every prefix), against the checker's shortcut.
        var generator = SplitMix64(seed: 7)
        for trial in 0..<200 {
            let k = 2 + Int(generator.next(below: 8))
            let units = (0..<k).map { _ in 1 + generator.next(below: 30) }
            let schedule = StageSchedule(units: units, tieBreakSeed: UInt64(trial))
            let q = Int64(schedule.period)
            let bound = (2 * Int64(k) - 3) * q
            var counts = [Int64](repeating: 0, count: k)
            for slot in 0..<schedule.period {
                counts[schedule.choice(at: slot)] += 1
                let n = Int64(slot + 1)
                for d in 0..<k {
                    #expect(abs(Int64(units[d]) * n - q * counts[d]) * 2 * Int64(k - 1) <= bound)
                }
            }
        }
    }

    @Test func megatronGreedyExceedsOneSequenceOnSmolLM3Stage1() {
        // Megatron's blending: pick argmax(w_d · max(n, 1) − c_d), first index on ties.
        let units = Self.smolLM3.stages[0].weights.map { Int64($0.units) }
        let q = units.reduce(0, +)
        var counts = [Int64](repeating: 0, count: units.count)
        var worst: Int64 = 0
        for n in 0..<10_000 {
            let scaled = Int64(max(n, 1))
            var best = 0
            for d in units.indices where units[d] * scaled - q * counts[d] > units[best] * scaled - q * counts[best] { best = d }
            counts[best] += 1
            for d in units.indices { worst = max(worst, abs(units[d] * Int64(n + 1) - q * counts[d])) }
        }
        #expect(Double(worst) / Double(q) > 1.0)
    }

    @Test func tieBreakSeedChangesOrderButNotCounts() {
        let units: [UInt64] = [5, 5, 5, 3, 1]
        let a = StageSchedule(units: units, tieBreakSeed: 1)
        let b = StageSchedule(units: units, tieBreakSeed: 2)
        let c = StageSchedule(units: units, tieBreakSeed: 1)
        let orderA = (0..<a.period).map(a.choice(at:))
        let orderB = (0..<b.period).map(b.choice(at:))
        #expect(orderA == (0..<c.period).map(c.choice(at:)))
        #expect(orderA != orderB)
        for d in units.indices { #expect(b.count(of: d, before: b.period) == units[d]) }
    }
}
