import Testing
import TokenfeedCurriculum

@Suite struct NanotronLoadingTests {
    @Test func smolLM3Stage3HasThreeStagesAtTheOfficialBoundaries() throws {
        let curriculum = try CurriculumLoader.load(path: Fixtures.smolLM3Stage3, dataRoot: nil)
        #expect(curriculum.format == .nanotron)
        #expect(curriculum.sequenceLength == 4096)
        #expect(curriculum.seed == 6)
        #expect(curriculum.stages.map(\.weights.count) == [41, 46, 56])
        #expect(curriculum.stages.map(\.name) == ["stable", "stable stage 2", "decay stage"])
        #expect(curriculum.stages.map(\.startToken) == [0, 8_139_571_200_000, 9_904_324_608_000])
        #expect(curriculum.stages.map(\.endToken) == [8_139_571_200_000, 9_904_324_608_000, 11_135_877_120_000])
        #expect(curriculum.endToken == 4_720_000 * 2_359_296)
        for stage in curriculum.stages {
            let sum = stage.weights.reduce(0.0) { $0 + $1.share }
            #expect(abs(sum - 1) < 1e-12)
        }
    }

    @Test func datasetNamesAreTheLastDatasetFolderComponent() throws {
        let curriculum = try CurriculumLoader.load(path: Fixtures.smolLM3Stage3, dataRoot: nil)
        let names = curriculum.datasets.map(\.name)
        #expect(names.first == "fineweb-edu")
        #expect(names.contains("stack-edu-Python"))
        #expect(!names.contains("stack-v2-Python"))
        #expect(names.contains("dolmino_math_synth/standard"))
        #expect(Set(names).count == names.count)
        // Without a data root the local read path is the folder.
        #expect(curriculum.datasets[0].folder == "/scratch/smollm3-data-part1/fineweb-edu")
    }

    @Test func tinyWeightIsExact() throws {
        let curriculum = try CurriculumLoader.load(path: Fixtures.smolLM3Stage3, dataRoot: nil)
        let stage2 = curriculum.stages[1]
        let vie = try #require(curriculum.datasets.firstIndex { $0.name == "fw2-vie" })
        let weight = try #require(stage2.weights.first { $0.dataset == vie })
        // Stage 2's weights are written to 5 decimals and sum to 1.00005 (100,005 units of 1e-5);
        // 0.00005 is exactly 5 of them.
        #expect(stage2.totalUnits == 100_005)
        #expect(weight.units == 5)
        #expect(stage2.weights.map(\.units).min() == 5)
    }

    @Test func longContextNamesAreMadeDistinct() throws {
        let curriculum = try CurriculumLoader.load(path: Fixtures.path("curricula/smollm3/long_context_4k_to_32k.yaml"), dataRoot: nil)
        let names = curriculum.datasets.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(names.contains("fw2-hq-fra_Latn/standard"))
        #expect(names.count == 56)
        #expect(curriculum.stages.count == 1)
        #expect(curriculum.endToken == 20_000 * 12 * 6 * 32_768)
    }
}
