import Foundation
import Testing
import TestSupport
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedShards

/// A dataset whose shards hold 0 tokens has nothing to serve: the daemon refuses it at start-up
/// (exit 1, before the socket exists, naming the dataset and its folder), and so do `tokenfeed plan`
/// and `tokenfeed dump --offline`, through the one check in `GlobalStream`. Real shard files, the
/// real binaries.
@Suite struct EmptyDatasetTests {
    let dir = TemporaryDirectory()
    var dataRoot: String { dir.sub("data") }
    var curriculumPath: String { dir.sub("curriculum.yaml") }

    init() throws {
        let tiny = dir.sub("data/tiny", create: true)
        try SyntheticCorpus.writeShard(SyntheticCorpus.documents(seed: 3, count: 4, vocabulary: 1000, meanLength: 30),
                                       path: tiny + "/a.zst", width: .uint16, vocabulary: 1000, tokensPerFrame: 50)
        let empty = dir.sub("data/empty", create: true)
        for name in ["a.zst", "b.zst"] {
            try SyntheticCorpus.writeShard([], path: empty + "/" + name, width: .uint16, vocabulary: 1000, tokensPerFrame: 50)
        }
        let yaml = """
        sequence_length: 16
        seed: 1
        stages:
          - name: only
            start: 0
            end: 10K
            mixture: {tiny: 1, empty: 1}

        """
        try yaml.write(toFile: curriculumPath, atomically: true, encoding: .utf8)
    }

    func expectNamesTheEmptyDataset(_ text: String) {
        #expect(text.contains("dataset empty"), "\(text)")
        #expect(text.contains(dataRoot + "/empty"), "\(text)")
        #expect(text.contains("0 tokens"), "\(text)")
    }

    @Test func theStreamRefusesIt() throws {
        let curriculum = try CurriculumLoader.load(path: curriculumPath, dataRoot: dataRoot)
        let error = #expect(throws: EngineError.self) { _ = try GlobalStream(curriculum: curriculum) }
        expectNamesTheEmptyDataset(error?.description ?? "")
    }

    @Test func theDaemonExitsBeforeReady() throws {
        let socket = dir.sub("s.sock")
        let result = try run(productsFolder + "/tokenfeedd", ["--curriculum", curriculumPath, "--data-root", dataRoot, "--socket", socket,
                                                               "--preload-bytes", "1MiB"])
        #expect(result.status == 1, "\(result.stderr)")
        expectNamesTheEmptyDataset(result.stderr)
        #expect(!FileManager.default.fileExists(atPath: socket))
    }

    @Test func planRefusesIt() throws {
        let result = try run(productsFolder + "/tokenfeed", ["plan", curriculumPath, "--data-root", dataRoot])
        #expect(result.status == 1, "\(result.stderr)")
        expectNamesTheEmptyDataset(result.stderr)
        #expect(!String(decoding: result.stdout, as: UTF8.self).contains("∞"))
    }

    @Test func dumpOfflineRefusesIt() throws {
        let result = try run(productsFolder + "/tokenfeed", ["dump", "--offline", curriculumPath, "--data-root", dataRoot, "--count", "2"])
        #expect(result.status == 1, "\(result.stderr)")
        expectNamesTheEmptyDataset(result.stderr)
    }
}
