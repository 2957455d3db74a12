import Foundation
import Testing
import TokenfeedCurriculum

/// Curricula at and past the limits of ``CurriculumLimits`` and of the YAML parser: each refused
/// with a `file:line:column` diagnostic, quickly, instead of a trap later (issue 8, points 2 and 7).
@Suite struct CurriculumLimitsTests {
    /// A tokenfeed curriculum with one stage mixing `count` datasets, as a flow mapping on one line.
    static func wideStage(_ count: Int) -> String {
        var text = "sequence_length: 16\nstages:\n  - name: wide\n    start: 0\n    end: 1T\n    mixture: {"
        text += (0..<count).map { "d\($0): 1" }.joined(separator: ", ")
        return text + "}\n"
    }

    @Test func moreThan65535DatasetsInAStageAreRefusedWithALocation() {
        do {
            _ = try CurriculumLoader.load(text: Self.wideStage(CurriculumLimits.maxDatasets + 1), path: "wide.yaml", dataRoot: nil)
            Issue.record("a stage of 65,536 datasets was accepted")
        } catch {
            #expect(error.diagnostics.count == 1, "\(error)")
            let e = error.diagnostics[0]
            #expect(e.file == "wide.yaml" && e.line == 6 && e.column == 14, "\(e)")
            #expect(e.message.contains("lists 65536 datasets") && e.message.contains("65535"), "\(e)")
        }
    }

    @Test func aLargeListParsesCompletely() throws {
        // 40,000 items (about 600 KB): quadratic parsing took minutes on this; linear takes well under a second.
        let count = 40_000
        let text = "items:\n" + (0..<count).map { "  - {name: dataset-\($0), weight: 0.000\($0 % 10)}\n" }.joined()
        let root = try #require(try YAMLParser.parse(text, file: "list.yaml"))
        guard case .mapping(let entries, _) = root, case .sequence(let items, _) = entries[0].value else {
            Issue.record("not a mapping of a list: \(root.kindDescription)")
            return
        }
        #expect(items.count == count)
        guard case .mapping(let last, let at) = items[count - 1] else { Issue.record("last item is not a mapping"); return }
        #expect(last.first?.value.scalarText == "dataset-\(count - 1)")
        #expect(at.line == count + 1 && at.column == 5)
    }

    @Test func aLargeMappingStillFindsDuplicateKeys() {
        let text = (0..<20_000).map { "k\($0): 1\n" }.joined() + "k7: 2\n"
        do {
            _ = try YAMLParser.parse(text, file: "keys.yaml")
            Issue.record("a duplicate key was accepted")
        } catch {
            #expect(error.diagnostics.map(\.description) == ["keys.yaml:20001:1: error: duplicate key 'k7' (first given at line 8); give each key once"])
        }
    }

    @Test(arguments: [(CurriculumLimits.maxNestingDepth + 1, "["), (40_000, "["), (40_000, "{a: ")])
    func deepNestingIsRefusedAtTheLevelPastTheLimit(depth: Int, opener: String) {
        let closer = opener == "[" ? "]" : "}"
        let text = "stages: " + String(repeating: opener, count: depth) + "1" + String(repeating: closer, count: depth) + "\n"
        do {
            _ = try CurriculumLoader.load(text: text, path: "deep.yaml", dataRoot: nil)
            Issue.record("nesting \(depth) deep was accepted")
        } catch {
            let e = error.diagnostics.first
            #expect(error.diagnostics.count == 1, "\(error)")
            // The root mapping is level 1, so the opener that goes past the limit is number `maxNestingDepth`.
            let column = 9 + (CurriculumLimits.maxNestingDepth - 1) * opener.count
            #expect(e?.line == 1 && e?.column == column, "\(error)")
            #expect(e?.message.contains("nest deeper than \(CurriculumLimits.maxNestingDepth) levels") == true, "\(error)")
        }
    }

    @Test func nestingAtTheLimitIsAccepted() throws {
        let depth = CurriculumLimits.maxNestingDepth - 1  // plus the root mapping
        let text = "a: " + String(repeating: "[", count: depth) + "1" + String(repeating: "]", count: depth) + "\n"
        #expect(try YAMLParser.parse(text, file: "deep.yaml") != nil)
    }

    @Test func theLimitsAreTheProtocols() {
        #expect(CurriculumLimits.maxSequenceLength == 16_777_215)
        #expect(CurriculumLimits.maxStageNameBytes == 256)
        #expect(CurriculumLimits.maxDatasetNameBytes == 1_024)
        #expect(CurriculumLimits.maxDatasets == 65_535 && CurriculumLimits.maxStages == 65_535)
    }

    @Test func theLongestNamesAndSequenceAreAccepted() throws {
        let stage = String(repeating: "é", count: 128)  // 256 bytes
        let dataset = String(repeating: "d", count: 1_024)
        let text = "sequence_length: 16777215\nstages:\n  - name: \(stage)\n    start: 0\n    end: 4611686018427387904\n    mixture: {\(dataset): 1}\n"
        let curriculum = try CurriculumLoader.load(text: text, path: "max.yaml", dataRoot: nil)
        #expect(curriculum.stages[0].name == stage && curriculum.datasets[0].name == dataset)
        #expect(curriculum.endToken == CurriculumLimits.maxEndToken)
    }

    @Test func aTokenCountBeyond64BitsSaysSo() {
        let text = "sequence_length: 16\nstages:\n  - name: a\n    start: 0\n    end: 20000000T\n    mixture: {web: 1}\n"
        do {
            _ = try CurriculumLoader.load(text: text, path: "big.yaml", dataRoot: nil)
            Issue.record("an end of 2·10^19 tokens was accepted")
        } catch {
            #expect(error.diagnostics.map(\.description) == ["big.yaml:5:10: error: the end of stage 'a' ('20000000T') does not fit in 64 bits; tokenfeed's limit is 4611686018427387904 (2^62) tokens"])
        }
        #expect(TokenQuantity.isTooLarge("18446744073709551616") && TokenQuantity.isTooLarge("123456789012345678901234"))
        #expect(!TokenQuantity.isTooLarge("0.5") && !TokenQuantity.isTooLarge("x") && !TokenQuantity.isTooLarge("-5T"))
    }
}
