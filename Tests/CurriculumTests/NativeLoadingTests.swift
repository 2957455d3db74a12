import Foundation
import Testing
import TokenfeedCurriculum

@Suite struct NativeLoadingTests {
    @Test func smolLM3InTokenfeedFormatEqualsTheNanotronConfig() throws {
        let native = try CurriculumLoader.load(path: Fixtures.path("curricula/smollm3.tokenfeed.yaml"), dataRoot: nil)
        let nanotron = try CurriculumLoader.load(path: Fixtures.smolLM3Stage3, dataRoot: nil)
        #expect(native.format == .tokenfeed)
        #expect(native.stages.map(\.weights.count) == [41, 46, 56])
        #expect(native.stages.map(\.startToken) == nanotron.stages.map(\.startToken))
        #expect(native.stages.map(\.endToken) == nanotron.stages.map(\.endToken))
        #expect(native.datasets.map(\.name) == nanotron.datasets.map(\.name))
        #expect(native.datasets.map(\.identity) == nanotron.datasets.map(\.identity))
        #expect(native.datasets.map { $0.folders.map(\.stages) } == nanotron.datasets.map { $0.folders.map(\.stages) })
        #expect(native.stages.map(\.weights) == nanotron.stages.map(\.weights))
        #expect(native.fingerprint == nanotron.fingerprint)
    }

    @Test func tokenCountsWithSuffixes() {
        #expect(TokenQuantity.parse("8T") == 8_000_000_000_000)
        #expect(TokenQuantity.parse("9.5T") == 9_500_000_000_000)
        #expect(TokenQuantity.parse("500M") == 500_000_000)
        #expect(TokenQuantity.parse("1_000_000") == 1_000_000)
        #expect(TokenQuantity.parse("2.5e9") == 2_500_000_000)
        #expect(TokenQuantity.parse("12K") == 12_000)
        #expect(TokenQuantity.parse("0.5") == nil)
        #expect(TokenQuantity.parse("-1M") == nil)
        #expect(TokenQuantity.parse("1__0") == nil)
        #expect(TokenQuantity.parse("T") == nil)
    }

    @Test func exactDecimals() throws {
        #expect(try ExactDecimal.parse("0.00005") == ExactDecimal(significand: 5, exponent: -5))
        #expect(try ExactDecimal.parse("1.0e-05") == ExactDecimal(significand: 1, exponent: -5))
        #expect(try ExactDecimal.parse("0.30") == ExactDecimal(significand: 3, exponent: -1))
        #expect(try ExactDecimal.parse("100") == ExactDecimal(significand: 1, exponent: 2))
        #expect(throws: ExactDecimal.ParseError.negative) { try ExactDecimal.parse("-0.1") }
        #expect(throws: ExactDecimal.ParseError.notANumber) { try ExactDecimal.parse("0.1.2") }
        #expect(throws: ExactDecimal.ParseError.notANumber) { try ExactDecimal.parse("abc") }
    }

    @Test func mixtureFilesDataRootAndPacking() throws {
        let folder = makeTemporaryFolder()
        defer { removeTemporaryFolder(folder) }
        let data = folder + "/data"
        for name in ["web", "HuggingFaceFW/fineweb-2/vie_Latn", "code-folder"] {
            write("x", to: data + "/" + name, "part-0.zst")
        }
        write("""
        datasets:
          - {name: "HuggingFaceFW/fineweb-2", config: "vie_Latn", weight: 0.25}
          - {name: web, weight: 0.75}
        """, to: folder, "decay.yaml")
        let path = write("""
        sequence_length: 8
        seed: 3
        packing: {mode: bestfit, pad_token: 0, lookahead: 16}
        datasets:
          code: code-folder
        stages:
          - name: stable
            start: 0
            end: 1K
            mixture: {web: 2, code: 1}
          - name: decay
            start: 1K
            end: 1.5K
            mixture_file: decay.yaml
        """, to: folder, "curriculum.yaml")
        let curriculum = try CurriculumLoader.load(path: path, dataRoot: data)
        #expect(curriculum.seed == 3)
        #expect(curriculum.packing == .bestfit(padToken: 0, lookahead: 16))
        #expect(curriculum.datasets.map(\.name) == ["web", "code", "HuggingFaceFW/fineweb-2/vie_Latn"])
        #expect(curriculum.datasets.map(\.folder) == [data + "/web", data + "/code-folder", data + "/HuggingFaceFW/fineweb-2/vie_Latn"])
        #expect(curriculum.stages[0].weights.map(\.units) == [2, 1])
        #expect(curriculum.stages[1].weights.map(\.units) == [1, 3])
        #expect(curriculum.stages[1].weights.map(\.share) == [0.25, 0.75])
        #expect(curriculum.endToken == 1_500)

        // Without a data root, relative folders resolve next to the curriculum file.
        let unrooted = try CurriculumLoader.load(path: path, dataRoot: nil)
        #expect(unrooted.datasets[0].folder == folder + "/web")
    }

    @Test func missingAndEmptyFoldersAreErrorsWithADataRoot() throws {
        let folder = makeTemporaryFolder()
        defer { removeTemporaryFolder(folder) }
        try FileManager.default.createDirectory(atPath: folder + "/data/empty", withIntermediateDirectories: true)
        write("x", to: folder + "/data/full", "a.zst")
        let path = write("""
        sequence_length: 8
        stages:
          - name: only
            start: 0
            end: 1K
            mixture:
              full: 1
              empty: 1
              missing: 1
        """, to: folder, "c.yaml")
        #expect(throws: Never.self) { try CurriculumLoader.load(path: path, dataRoot: nil) }
        do {
            _ = try CurriculumLoader.load(path: path, dataRoot: folder + "/data")
            Issue.record("accepted a curriculum with a missing and an empty folder")
        } catch {
            #expect(error.diagnostics.count == 2)
            #expect(error.diagnostics.map(\.line) == [8, 9])
            #expect(error.diagnostics.allSatisfy { $0.column == 7 && $0.file == path })
            #expect(error.diagnostics[0].message.contains("is empty"))
            #expect(error.diagnostics[1].message.contains("does not exist"))
        }
    }

    @Test func nanotronFoldersUseTheDataRootAndName() throws {
        let folder = makeTemporaryFolder()
        defer { removeTemporaryFolder(folder) }
        do {
            _ = try CurriculumLoader.load(path: Fixtures.smolLM3Stage3, dataRoot: folder)
            Issue.record("accepted missing folders")
        } catch {
            // None found: a summary, the first three datasets at their first read paths, the rest on one line.
            let curriculum = try CurriculumLoader.load(path: Fixtures.smolLM3Stage3, dataRoot: nil)
            #expect(error.diagnostics.count == 5)
            #expect(error.diagnostics[0].message.hasPrefix("0 of \(curriculum.datasets.count) dataset folders found under \(folder)"))
            #expect(error.diagnostics[1].line == 14 && error.diagnostics[1].column == 9)
            #expect(error.diagnostics[1].message.contains(folder + "/fineweb-edu"))
            #expect(error.diagnostics[4].message.hasPrefix("\(curriculum.datasets.count - 3) more dataset folders do not exist: "))
            #expect(error.diagnostics[4].message.contains("stack-edu-HTML"))
        }
    }

    @Test func aStandAloneDatasetListIsOneOpenEndedStage() throws {
        let folder = makeTemporaryFolder()
        defer { removeTemporaryFolder(folder) }
        let path = write("""
        datasets:
          - {name: "HuggingFaceFW/fineweb-2", config: "vie_Latn", weight: 0.00325}
          - {name: "HuggingFaceFW/fineweb-edu", weight: 0.3}
        """, to: folder, "mix.yaml")
        let curriculum = try CurriculumLoader.load(path: path, dataRoot: nil)
        #expect(curriculum.format == .datasetList)
        #expect(curriculum.stages.count == 1)
        #expect(curriculum.stages[0].name == "mix")
        #expect(curriculum.stages[0].weights.map(\.units) == [13, 1200])
    }
}
