import Foundation
import Testing
import TestSupport
import TokenfeedCurriculum
import TokenfeedMixing

/// `tokenfeed plan`, run as the built binary.
@Suite struct PlanCommandTests {
    static var tokenfeed: String { productsFolder + "/tokenfeed" }

    func json(_ data: Data) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    @Test func smolLM3Stage3PlansAsThreeStagesAtTheOfficialBoundaries() throws {
        let result = try run(Self.tokenfeed, ["plan", Fixtures.smolLM3Stage3, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try json(result.stdout)
        #expect(object["sequence_length"] as? Int == 4096)
        #expect(object["seed"] as? Int == 6)
        let stages = try #require(object["stages"] as? [[String: Any]])
        #expect(stages.count == 3)
        #expect(stages.map { ($0["datasets"] as? [Any])?.count } == [41, 46, 56])
        #expect(stages.map { $0["start_token"] as? Int64 } == [0, 8_139_571_200_000, 9_904_324_608_000])
        #expect(stages.map { $0["end_token"] as? Int64 } == [8_139_571_200_000, 9_904_324_608_000, 11_135_877_120_000])
        #expect(stages.map { $0["name"] as? String } == ["stable", "stable stage 2", "decay stage"])
        for stage in stages {
            let datasets = try #require(stage["datasets"] as? [[String: Any]])
            let sum = datasets.reduce(0.0) { $0 + (($1["weight"] as? Double) ?? .nan) }
            #expect(abs(sum - 1) < 1e-9)
            #expect(datasets.allSatisfy { $0["name"] is String && $0.keys.contains("path") })
        }
        let first = try #require((stages[0]["datasets"] as? [[String: Any]])?.first)
        #expect(first["name"] as? String == "fineweb-edu")
        #expect(first["path"] as? String == "/scratch/smollm3-data-part1/fineweb-edu")
    }

    @Test func humanOutputShowsStagesCategoriesAndBars() throws {
        let result = try run(Self.tokenfeed, ["plan", Fixtures.path("curricula/smollm3.tokenfeed.yaml")])
        #expect(result.status == 0, "\(result.stderr)")
        let text = String(decoding: result.stdout, as: UTF8.self)
        #expect(text.contains("Stage 1 \"stable\": tokens 0 → 8,139,571,200,000"))
        #expect(text.contains("Stage 3 \"decay stage\": tokens 9,904,324,608,000 → 11,135,877,120,000"))
        for category in ["web", "code", "math", "multilingual"] { #expect(text.contains("\n  \(category) ")) }
        #expect(text.contains("█"))
    }

    @Test func malformedCurriculumExitsNonZeroWithEveryDiagnostic() throws {
        let path = Fixtures.path("curricula/bad/weights.yaml")
        let result = try run(Self.tokenfeed, ["plan", path])
        #expect(result.status != 0)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 5)
        #expect(lines.first == "\(path):8:12: error: the weight of 'web' in stage 'first' is negative (-0.5); weights must be zero or positive")
        #expect(result.stdout.isEmpty)
    }

    @Test func dataRootShowsAvailableTokensEpochsAndWraps() throws {
        let temporary = TemporaryDirectory("tokenfeed-plan")
        let root = temporary.sub("data", create: true)
        // web: 5,000 tokens; code: 200 tokens — far too little for what the curriculum draws.
        let web = SyntheticCorpus.documents(seed: 1, count: 50, vocabulary: 1000, meanLength: 100)
        let code = [[UInt32](repeating: 7, count: 120), [UInt32](repeating: 8, count: 80)]
        try FileManager.default.createDirectory(atPath: root + "/web", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/code", withIntermediateDirectories: true)
        try SyntheticCorpus.writeShard(web, path: root + "/web/part-0.zst")
        try SyntheticCorpus.writeShard(code, path: root + "/code/part-0.zst")
        let curriculumPath = temporary.path + "/c.yaml"
        try """
        sequence_length: 16
        stages:
          - {name: one, start: 0, end: 2K, mixture: {web: 3, code: 1}}
          - {name: two, start: 2K, end: 4096, mixture: {web: 1, code: 1}}
        """.write(toFile: curriculumPath, atomically: true, encoding: .utf8)

        let result = try run(Self.tokenfeed, ["plan", curriculumPath, "--data-root", root, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try json(result.stdout)
        let datasets = try #require(object["datasets"] as? [[String: Any]])
        let codeEntry = try #require(datasets.first { $0["name"] as? String == "code" })
        let available = try #require(codeEntry["available_tokens"] as? Int)
        #expect(available == 200)

        // Cross-check against the library: code yields (200 − 1) / 16 = 12 sequences per epoch.
        let curriculum = try CurriculumLoader.load(path: curriculumPath, dataRoot: root)
        let plan = StreamPlan(curriculum: curriculum)
        let d = try #require(curriculum.datasets.firstIndex { $0.name == "code" })
        let drawn = plan.totalCounts[d]
        #expect(codeEntry["drawn_tokens"] as? Int == Int(drawn) * 16)
        let wrap = try #require(plan.sequence(ofOrdinal: 12, dataset: d))
        #expect(codeEntry["wraps_at_token"] as? Int == Int(wrap) * 16)
        #expect(abs((codeEntry["epochs"] as? Double ?? 0) - Double(drawn) / 12) < 1e-9)

        let human = try run(Self.tokenfeed, ["plan", curriculumPath, "--data-root", root])
        let text = String(decoding: human.stdout, as: UTF8.self)
        let wrapToken = wrap * 16
        let grouped = wrapToken >= 1000 ? "\(wrapToken / 1000),\(String(wrapToken % 1000 + 1000).dropFirst())" : "\(wrapToken)"
        #expect(text.contains("token \(grouped) "), "\(text)")
        #expect(text.contains("⚠ repeated"))
    }

    @Test func dataRootWithoutShardsIsAnError() throws {
        let temporary = TemporaryDirectory("tokenfeed-plan")
        let root = temporary.sub("data", create: true)
        try FileManager.default.createDirectory(atPath: root + "/web", withIntermediateDirectories: true)
        try "not a shard".write(toFile: root + "/web/readme.txt", atomically: true, encoding: .utf8)
        let curriculumPath = temporary.path + "/c.yaml"
        try """
        sequence_length: 16
        stages:
          - name: one
            start: 0
            end: 1K
            mixture:
              web: 1
        """.write(toFile: curriculumPath, atomically: true, encoding: .utf8)
        let result = try run(Self.tokenfeed, ["plan", curriculumPath, "--data-root", root])
        #expect(result.status != 0)
        // web's folder is not empty, but holds no shard.
        #expect(result.stderr.hasPrefix("\(curriculumPath):7:7: error: dataset 'web': "), "\(result.stderr)")
        #expect(result.stderr.contains("no shard"))
    }
}
