import Foundation
import Testing
import TestSupport
import TokenfeedCurriculum
import TokenfeedMixing

/// A dataset is its identity (nanotron's `dataset_folder`), not its local read path: the same data
/// in a later stage continues where it stopped (issue 10.1).
@Suite struct DatasetIdentityTests {
    static let htmlIdentity = "s3://smollm3/datasets/llama_tokenized-individual-chunks/stack-edu-HTML"

    @Test func smolLM3StackEduHTMLIsOneDatasetInAllThreeStages() throws {
        let curriculum = try CurriculumLoader.load(path: Fixtures.smolLM3Stage3, dataRoot: nil)
        // 72 read paths, 71 dataset folders.
        #expect(curriculum.datasets.count == 71)
        let html = try #require(curriculum.datasets.firstIndex { $0.name == "stack-edu-HTML" })
        let spec = curriculum.datasets[html]
        #expect(spec.identity == Self.htmlIdentity)
        #expect(spec.folders.map(\.written) == ["/scratch/smollm3-data-part1/stack-v2-HTML", "/scratch/smollm3-data-part1/stack-edu-HTML"])
        #expect(spec.folders.map(\.stages) == [[0, 1], [2]])
        #expect(spec.folder == "/scratch/smollm3-data-part1/stack-v2-HTML")
        for stage in curriculum.stages { #expect(stage.weights.contains { $0.dataset == html }) }
        #expect(!curriculum.datasets.contains { $0.name == "stack-v2-HTML" })
        #expect(curriculum.warnings.isEmpty)
    }

    @Test func theDecayStageContinuesStackEduHTMLWhereStage2Stopped() throws {
        let curriculum = try CurriculumLoader.load(path: Fixtures.smolLM3Stage3, dataRoot: nil)
        let plan = StreamPlan(curriculum: curriculum)
        let html = try #require(curriculum.datasets.firstIndex { $0.name == "stack-edu-HTML" })
        let decay = plan.firstSequence(ofStage: 2)
        let before = plan.count(ofDataset: html, beforeSequence: decay)
        // 14,568,474.46 by exact shares; nanotron continues at sample 14,568,474 too (issue 10).
        #expect(before == 14_568_474, "stages 1-2 drew \(before) sequences from it")
        // The first decay sequence drawn from it reads its ordinal `before`, not 0.
        let first = try #require(plan.sequence(ofOrdinal: before, dataset: html))
        #expect(first >= decay)
        #expect(plan.source(ofSequence: first).ordinal == before)
        #expect(plan.source(ofSequence: first).stage == 2)
    }

    @Test func namesComeFromTheDatasetFolderAndFoldersFromTheReadPath() throws {
        let curriculum = try CurriculumLoader.load(path: Fixtures.smolLM3Stage3, dataRoot: "/data", requireFolders: false)
        let python = try #require(curriculum.datasets.first { $0.name == "stack-edu-Python" })
        #expect(python.folder == "/data/stack-v2-Python")
        let mwiki = try #require(curriculum.datasets.first { $0.identity.hasSuffix("/mwiki/standard") })
        #expect(mwiki.name == "mwiki/standard")
        #expect(mwiki.folder == "/data/multilingual_wiki")
    }

    func nanotron(_ stages: [(folders: [String], paths: [String])]) -> String {
        var text = """
        general: {seed: 3}
        parallelism: {dp: 1}
        tokens: {sequence_length: 16, micro_batch_size: 1, batch_accumulation_per_replica: 1, train_steps: 40}
        data_stages:

        """
        for (s, stage) in stages.enumerated() {
            text += "- name: s\(s + 1)\n  start_training_step: \(1 + 10 * s)\n  data:\n    dataset:\n"
            text += "      dataset_folder: [\(stage.folders.joined(separator: ", "))]\n"
            text += "      dataset_read_path: [\(stage.paths.joined(separator: ", "))]\n"
            text += "      dataset_weights: [\(stage.paths.map { _ in "1" }.joined(separator: ", "))]\n"
        }
        return text
    }

    func makeFolder(_ root: String, _ name: String, files: [String: String]) {
        for (file, contents) in files { write(contents, to: root + "/" + name, file) }
    }

    @Test func foldersOfOneIdentityMustHoldTheSameFiles() throws {
        let root = makeTemporaryFolder()
        defer { removeTemporaryFolder(root) }
        makeFolder(root, "old-html", files: ["a.zst": "12345"])
        makeFolder(root, "new-html", files: ["a.zst": "12345"])
        makeFolder(root, "web", files: ["a.zst": "1"])
        let text = nanotron([(["s3://b/html/", "s3://b/web"], ["/x/old-html", "/x/web"]),
                             (["s3://b/html", "s3://b/web"], ["/x/new-html", "/x/web"])])
        let same = try CurriculumLoader.load(text: text, path: root + "/c.yaml", dataRoot: root)
        #expect(same.datasets.map(\.name) == ["html", "web"])
        #expect(same.datasets[0].folder == root + "/old-html")
        #expect(same.datasets[0].folders.map(\.path) == [root + "/old-html", root + "/new-html"])
        #expect(same.stages.map { $0.weights.map(\.dataset) } == [[0, 1], [0, 1]])

        // Only the stage-2 copy on this machine: it is read.
        try FileManager.default.removeItem(atPath: root + "/old-html")
        let onlyNew = try CurriculumLoader.load(text: text, path: root + "/c.yaml", dataRoot: root)
        #expect(onlyNew.datasets[0].folder == root + "/new-html")

        makeFolder(root, "old-html", files: ["a.zst": "123456"])
        do {
            _ = try CurriculumLoader.load(text: text, path: root + "/c.yaml", dataRoot: root)
            Issue.record("different files under one identity were accepted")
        } catch {
            let message = error.description
            #expect(message.contains(root + "/c.yaml:17:"), "\(message)")
            #expect(message.contains("dataset 'html' (identity s3://b/html) is read from \(root)/old-html in stage 1 and from \(root)/new-html in stage 2, but the folders hold different files ('a.zst' has 6 bytes in the first, 5 in the second)"), "\(message)")
        }
    }

    @Test func twoIdentitiesOverTheSameFilesAreWarnedAbout() throws {
        let root = makeTemporaryFolder()
        defer { removeTemporaryFolder(root) }
        makeFolder(root, "html", files: ["a.zst": "1"])
        try FileManager.default.createSymbolicLink(atPath: root + "/html-link", withDestinationPath: root + "/html")
        let text = nanotron([(["s3://b/html-v2", "s3://b/html-edu"], ["/x/html", "/y/html-link"])])
        let curriculum = try CurriculumLoader.load(text: text, path: root + "/c.yaml", dataRoot: root)
        #expect(curriculum.datasets.count == 2)
        let warning = try #require(curriculum.warnings.first)
        #expect(curriculum.warnings.count == 1)
        #expect(warning.location.line == 10)
        #expect(warning.description.contains("warning: datasets 'html-v2' and 'html-edu' resolve to the same files"))
        // plan prints it on stderr and still plans (read paths used as written, without a data root).
        let local = nanotron([(["s3://b/html-v2", "s3://b/html-edu"], [root + "/html", root + "/html-link"])])
        let plan = try run(productsFolder + "/tokenfeed", ["plan", write(local, to: root, "local.yaml")])
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(plan.stderr.hasPrefix("\(root)/local.yaml:10:") && plan.stderr.contains(": warning: datasets 'html-v2' and 'html-edu' resolve to the same files"), "\(plan.stderr)")
        #expect(String(decoding: plan.stdout, as: UTF8.self).contains("  ⚠ datasets 'html-v2' and 'html-edu' resolve to the same files"))
        // One identity over the same files is no warning.
        let one = nanotron([(["s3://b/html"], ["/x/html"]), (["s3://b/html"], ["/y/html-link"])])
        #expect(try CurriculumLoader.load(text: one, path: root + "/c.yaml", dataRoot: root).warnings.isEmpty)
    }

    @Test func tokenfeedFormatSharesAnIdentityExplicitly() throws {
        let text = """
        sequence_length: 16
        datasets:
          html-old: {folder: stack-v2-HTML, identity: stack-edu-HTML}
        stages:
          - {name: a, start: 0, end: 160, mixture: {web: 1, html-old: 1}}
          - {name: b, start: 160, end: 320, mixture: {web: 1, stack-edu-HTML: 1}}
        """
        let curriculum = try CurriculumLoader.load(text: text, path: "/c/x.yaml", dataRoot: nil)
        #expect(curriculum.datasets.map(\.name) == ["web", "html-old"])
        #expect(curriculum.datasets.map(\.identity) == ["web", "stack-edu-HTML"])
        #expect(curriculum.datasets[1].folders.map(\.path) == ["/c/stack-v2-HTML", "/c/stack-edu-HTML"])
        #expect(curriculum.datasets[1].folders.map(\.stages) == [[0], [1]])
        let plan = StreamPlan(curriculum: curriculum)
        #expect(plan.counts(inStage: 0)[1] == 5)
        #expect(plan.source(ofSequence: try #require(plan.sequence(ofOrdinal: 5, dataset: 1))).stage == 1)

        let twice = text.replacingOccurrences(of: "{web: 1, stack-edu-HTML: 1}", with: "{html-old: 1, stack-edu-HTML: 1}")
        #expect(throws: CurriculumErrors.self) { try CurriculumLoader.load(text: twice, path: "/c/x.yaml", dataRoot: nil) }
        do { _ = try CurriculumLoader.load(text: twice, path: "/c/x.yaml", dataRoot: nil) } catch {
            #expect(error.description.hasPrefix("/c/x.yaml:6:"))
            #expect(error.description.contains("error: dataset 'stack-edu-HTML' appears twice in stage 'b' (first at line 6 (as 'html-old', one identity with 'stack-edu-HTML')); list each dataset once per stage"))
        }
    }

    @Test func planShowsIdentitiesAndTheirFolders() throws {
        let result = try run(productsFolder + "/tokenfeed", ["plan", Fixtures.smolLM3Stage3])
        #expect(result.status == 0, "\(result.stderr)")
        let text = String(decoding: result.stdout, as: UTF8.self)
        #expect(text.contains("71 datasets"))
        #expect(text.contains("Dataset identities → local folders"))
        let section = try #require(text.components(separatedBy: "Dataset identities → local folders").last)
        let line = try #require(section.split(separator: "\n").first { $0.hasPrefix("  stack-edu-HTML ") })
        #expect(line.contains(Self.htmlIdentity))
        #expect(line.contains("← /scratch/smollm3-data-part1/stack-v2-HTML (stages 1, 2; read), /scratch/smollm3-data-part1/stack-edu-HTML (stage 3)"))

        let json = try run(productsFolder + "/tokenfeed", ["plan", Fixtures.smolLM3Stage3, "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any])
        let identities = try #require(object["identities"] as? [[String: Any]])
        #expect(identities.count == 71)
        let html = try #require(identities.first { $0["name"] as? String == "stack-edu-HTML" })
        #expect(html["identity"] as? String == Self.htmlIdentity)
        #expect((html["folders"] as? [[String: Any]])?.map { $0["stages"] as? [Int] } == [[0, 1], [2]])
    }
}
