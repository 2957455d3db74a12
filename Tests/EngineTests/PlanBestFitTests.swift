import Foundation
import Testing
import TestSupport
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedMixing
import TokenfeedShards

/// `tokenfeed plan` counts a bestfit dataset's epochs in packed rows, not in concat windows: the
/// dataset wraps at the sequence that draws its first row past one epoch's rows.
@Suite struct PlanBestFitTests {
    @Test func bestfitWrapPointsUsePackedRows() throws {
        let fixture = try EngineFixture()
        let yaml = """
            sequence_length: 64
            seed: 4
            packing: {mode: bestfit, pad_token: 0, lookahead: 8}
            stages:
              - name: only
                start: 0
                end: 1M
                mixture:
                  web: 1
                  tiny: 1
            """
        let path = fixture.dir.sub("bestfit.yaml")
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try run(productsFolder + "/tokenfeed", ["plan", path, "--data-root", fixture.dataRoot, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
        let entries = try #require(object["datasets"] as? [[String: Any]])
        let curriculum = try CurriculumLoader.load(path: path, dataRoot: fixture.dataRoot)
        let plan = StreamPlan(curriculum: curriculum)
        for (d, spec) in curriculum.datasets.enumerated() {
            let rows = try PaddingReport(folder: try DatasetFolder.open(path: spec.folder!), sequenceLength: 64, lookahead: 8).rows
            let windows = EpochOrder.sequencesPerEpoch(tokens: try DatasetFolder.open(path: spec.folder!).tokenCount, sequenceLength: 64)
            #expect(rows != windows, "the test needs packing to differ from concat for \(spec.name)")
            let entry = try #require(entries.first { $0["name"] as? String == spec.name })
            let wrap = try #require(plan.sequence(ofOrdinal: rows, dataset: d))
            #expect(entry["wraps_at_token"] as? Int == Int(wrap) * 64, "\(spec.name)")
        }
    }
}
