import Testing
import TokenfeedCurriculum
import TokenfeedMixing
import TokenfeedSystem

@Suite struct StreamPlanTests {
    static let curriculum = try! CurriculumLoader.load(path: Fixtures.smolLM3Stage3, dataRoot: nil)
    static let plan = StreamPlan(curriculum: curriculum)

    @Test func smolLM3StagesStartAtTheFirstSequenceAtOrPastTheirBoundary() {
        let plan = Self.plan
        #expect(plan.stageCount == 3)
        #expect(plan.firstSequence(ofStage: 0) == 0)
        #expect(plan.firstSequence(ofStage: 1) == 8_139_571_200_000 / 4096)
        #expect(plan.firstSequence(ofStage: 2) == 9_904_324_608_000 / 4096)
        #expect(plan.totalSequences == 2_718_720_000)
        #expect(plan.stageIndex(ofSequence: 1_987_199_999) == 0)
        #expect(plan.stageIndex(ofSequence: 1_987_200_000) == 1)
        #expect(plan.stageIndex(ofSequence: plan.totalSequences - 1) == 2)
    }

    @Test func boundaryThatIsNotASequenceMultipleStartsAtTheNextSequence() throws {
        let text = """
        sequence_length: 10
        stages:
          - {name: a, start: 0, end: 25, mixture: {x: 1, y: 1}}
          - {name: b, start: 25, end: 100, mixture: {x: 1, z: 3}}
        """
        let curriculum = try CurriculumLoader.load(text: text, path: "/tmp/inline.yaml", dataRoot: nil)
        let plan = StreamPlan(curriculum: curriculum)
        // Sequence 2 covers tokens 20..<30 and starts before 25; sequence 3 starts at 30 ≥ 25.
        #expect(plan.firstSequence(ofStage: 1) == 3)
        #expect(plan.totalSequences == 10)
        #expect((0..<10).map { plan.stageIndex(ofSequence: $0) } == [0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
    }

    @Test func randomAccessAgreesWithTheSequentialCursorAcrossStageBoundaries() {
        let plan = Self.plan
        for boundary in [plan.firstSequence(ofStage: 1), plan.firstSequence(ofStage: 2)] {
            let start = boundary - 150_000
            var cursor = plan.cursor(startingAt: start)
            #expect(cursor.counts == plan.counts(beforeSequence: start))
            for offset in 0..<UInt64(300_000) {
                let i = start + offset
                let sequential = cursor.next()!
                if offset % 97 == 0 || (i >= boundary - 500 && i < boundary + 500) {
                    #expect(plan.source(ofSequence: i) == sequential, "sequence \(i)")
                }
            }
            #expect(cursor.counts == plan.counts(beforeSequence: start + 300_000))
        }
    }

    @Test func countsOrdinalsAndInverseAgreeAnywhereInTheStream() {
        let plan = Self.plan
        var generator = SplitMix64(seed: 11)
        for _ in 0..<300 {
            let i = generator.next(below: plan.totalSequences)
            let counts = plan.counts(beforeSequence: i)
            #expect(counts.reduce(0, +) == i)
            let source = plan.source(ofSequence: i)
            #expect(source.ordinal == counts[source.dataset])
            #expect(plan.count(ofDataset: source.dataset, beforeSequence: i) == source.ordinal)
            #expect(plan.count(ofDataset: source.dataset, beforeSequence: i + 1) == source.ordinal + 1)
            #expect(plan.sequence(ofOrdinal: source.ordinal, dataset: source.dataset) == i)
        }
        #expect(plan.counts(beforeSequence: plan.totalSequences) == plan.totalCounts)
        #expect(plan.totalCounts.reduce(0, +) == plan.totalSequences)
    }

    @Test func readPositionsCarryOverBetweenStages() throws {
        let plan = Self.plan
        let curriculum = Self.curriculum
        let fineweb = try #require(curriculum.datasets.firstIndex { $0.name == "fineweb-edu" })
        let inStage0 = plan.counts(inStage: 0)[fineweb]
        #expect(inStage0 > 0)
        // The first fineweb-edu sequence of stage 2 continues where stage 1 stopped.
        var cursor = plan.cursor(startingAt: plan.firstSequence(ofStage: 1))
        while let source = cursor.next(), source.dataset != fineweb {}
        #expect(plan.source(ofSequence: cursor.position - 1).ordinal == inStage0)
        // A dataset that only appears in stage 3 starts at ordinal 0.
        let late = try #require(curriculum.datasets.firstIndex { $0.name == "openmathinstruct-2/standard" })
        #expect(plan.count(ofDataset: late, beforeSequence: plan.firstSequence(ofStage: 2)) == 0)
        let first = try #require(plan.sequence(ofOrdinal: 0, dataset: late))
        #expect(first >= plan.firstSequence(ofStage: 2))
    }

    @Test func wholeStagesDrawTheirWeightsWithinOneSequence() {
        let plan = Self.plan
        let curriculum = Self.curriculum
        for (s, stage) in curriculum.stages.enumerated() {
            let n = plan.firstSequence(ofStage: s + 1) - plan.firstSequence(ofStage: s)
            let counts = plan.counts(inStage: s)
            for weight in stage.weights {
                // |c − n·W/Q| ≤ 1  ⇔  |Q·c − n·W| ≤ Q
                let q = UInt128(stage.totalUnits)
                let lhs = UInt128(counts[weight.dataset]) * q, rhs = UInt128(n) * UInt128(weight.units)
                #expect((lhs > rhs ? lhs - rhs : rhs - lhs) <= q)
            }
        }
    }

    @Test func planIsAPureFunctionOfCurriculumAndSeed() throws {
        let again = StreamPlan(curriculum: try CurriculumLoader.load(path: Fixtures.smolLM3Stage3, dataRoot: nil))
        var generator = SplitMix64(seed: 5)
        for _ in 0..<200 {
            let i = generator.next(below: again.totalSequences)
            #expect(again.source(ofSequence: i) == Self.plan.source(ofSequence: i))
        }
        var reseeded = Self.curriculum
        reseeded.seed = 7
        #expect(reseeded.fingerprint != Self.curriculum.fingerprint)
        let other = StreamPlan(curriculum: reseeded)
        let a = (0..<UInt64(2_000)).map { Self.plan.source(ofSequence: $0).dataset }
        let b = (0..<UInt64(2_000)).map { other.source(ofSequence: $0).dataset }
        #expect(a != b)  // the seed breaks deadline ties
        #expect(other.totalCounts.reduce(0, +) == Self.plan.totalCounts.reduce(0, +))
    }
}

@Suite struct EpochOrderTests {
    @Test func epochZeroIsManifestOrderAndLaterEpochsArePermutations() {
        #expect(EpochOrder.shardOrder(datasetName: "web", epoch: 0, shardCount: 5, seed: 1) == [0, 1, 2, 3, 4])
        for epoch in UInt64(1)...20 {
            let order = EpochOrder.shardOrder(datasetName: "web", epoch: epoch, shardCount: 50, seed: 6)
            #expect(order.sorted() == Array(0..<50))
            #expect(order == EpochOrder.shardOrder(datasetName: "web", epoch: epoch, shardCount: 50, seed: 6))
        }
        let a = EpochOrder.shardOrder(datasetName: "web", epoch: 1, shardCount: 50, seed: 6)
        #expect(a != EpochOrder.shardOrder(datasetName: "web", epoch: 2, shardCount: 50, seed: 6))
        #expect(a != EpochOrder.shardOrder(datasetName: "code", epoch: 1, shardCount: 50, seed: 6))
        #expect(a != EpochOrder.shardOrder(datasetName: "web", epoch: 1, shardCount: 50, seed: 7))
    }

    @Test func ordersAreFixedAcrossMachinesAndReleases() {
        // Pinned values: a change here changes every resumed run's data order.
        #expect(FNV1a64.hash("a") == 0xaf63_dc4c_8601_ec8c)  // the published FNV-1a test vector
        let order = EpochOrder.shardOrder(datasetName: "fineweb-edu", epoch: 1, shardCount: 8, seed: 6)
        #expect(order == EpochOrderTests.pinned)
    }
    static let pinned: [Int] = [4, 2, 3, 6, 7, 0, 1, 5]

    @Test func sequencesPerEpochCountsOverlappingReads() {
        // 4097 tokens hold one sequence of 4096 (+1 label token); 8193 hold two.
        #expect(EpochOrder.sequencesPerEpoch(tokens: 4096, sequenceLength: 4096) == 0)
        #expect(EpochOrder.sequencesPerEpoch(tokens: 4097, sequenceLength: 4096) == 1)
        #expect(EpochOrder.sequencesPerEpoch(tokens: 8192, sequenceLength: 4096) == 1)
        #expect(EpochOrder.sequencesPerEpoch(tokens: 8193, sequenceLength: 4096) == 2)
    }
}
