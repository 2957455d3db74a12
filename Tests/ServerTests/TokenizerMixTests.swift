import Foundation
import Testing
import TestSupport
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedShards

/// A curriculum whose datasets come from different tokenizers is refused — by the daemon at
/// start-up (exit 1, no socket), `tokenfeed plan` and `tokenfeed dump --offline` — naming both datasets
/// and both tokenizers. A dataset of unknown tokenizer mixes with a known one, with a warning in `plan` and the daemon's log.
@Suite struct TokenizerMixTests {
    let dir = TemporaryDirectory()
    var dataRoot: String { dir.sub("data") }
    var curriculumPath: String { dir.sub("curriculum.yaml") }

    func writeDataset(_ name: String, tokenizer: String?, seed: UInt64) throws {
        let folder = dir.sub("data/" + name, create: true)
        let writer = try ShardWriter(path: folder + "/a.zst", tokenWidth: .uint16, vocabularySize: 1000, tokensPerFrame: 50, tokenizer: tokenizer)
        for doc in SyntheticCorpus.documents(seed: seed, count: 6, vocabulary: 1000, meanLength: 30) {
            try writer.write(tokens: doc)
            try writer.endDocument()
        }
        try writer.finish()
    }

    init() throws {
        try writeDataset("small", tokenizer: "gpt2", seed: 1)
        try writeDataset("llama", tokenizer: "meta-llama/Llama-3.2-1B", seed: 2)
        try writeDataset("old", tokenizer: nil, seed: 3)
    }

    func writeCurriculum(_ second: String) throws {
        let yaml = """
        sequence_length: 16
        seed: 1
        stages:
          - name: one
            start: 0
            end: 1K
            mixture: {small: 1}
          - name: two
            start: 1K
            end: 2K
            mixture: {\(second): 1}

        """
        try yaml.write(toFile: curriculumPath, atomically: true, encoding: .utf8)
    }

    func expectNamesBoth(_ text: String) {
        #expect(text.contains("small") && text.contains("llama") && text.contains("\"gpt2\"") && text.contains("\"meta-llama/Llama-3.2-1B\""), "\(text)")
    }

    @Test func mixedTokenizersAreRefusedEverywhere() throws {
        try writeCurriculum("llama")
        let socket = dir.sub("s.sock")
        let daemon = try run(productsFolder + "/tokenfeedd", ["--curriculum", curriculumPath, "--data-root", dataRoot, "--socket", socket,
                                                               "--preload-bytes", "1MiB"])
        #expect(daemon.status == 1)
        expectNamesBoth(daemon.stderr)
        #expect(!FileManager.default.fileExists(atPath: socket))
        let plan = try run(productsFolder + "/tokenfeed", ["plan", curriculumPath, "--data-root", dataRoot])
        #expect(plan.status == 1)
        expectNamesBoth(plan.stderr)
        let dump = try run(productsFolder + "/tokenfeed", ["dump", "--offline", curriculumPath, "--data-root", dataRoot])
        #expect(dump.status == 1)
        expectNamesBoth(dump.stderr)
    }

    @Test func anUnknownTokenizerMixesWithAWarning() throws {
        try writeCurriculum("old")
        let plan = try run(productsFolder + "/tokenfeed", ["plan", curriculumPath, "--data-root", dataRoot])
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(plan.stderr.contains("warning: the tokenizer of old is unknown"), "\(plan.stderr)")
        let curriculum = try CurriculumLoader.load(path: curriculumPath, dataRoot: dataRoot)
        _ = try GlobalStream(curriculum: curriculum)
        // The daemon serves it and says the same in its log.
        let socket = dir.sub("s.sock")
        let daemon = try DaemonProcess(["--curriculum", curriculumPath, "--data-root", dataRoot, "--socket", socket,
                                        "--preload-bytes", "1MiB"], socket: socket)
        #expect(daemon.process.isRunning, "\(daemon.stderr)")
        #expect(daemon.terminate() == 0)
        let warning = daemon.stderr.split(separator: "\n").first { $0.contains("tokenizer of some datasets is unknown") }
        #expect(warning.map { $0.contains("warning") && $0.contains("unknown=old") && $0.contains("tokenizer=gpt2") } == true, "\(daemon.stderr)")
    }
}
