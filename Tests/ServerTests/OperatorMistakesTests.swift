import Foundation
import Testing
import TestSupport

/// Common operator mistakes, each answered by the built binaries with a guiding message and the
/// documented exit status (0 ok, 1 failure, 2 usage; docs/OPERATIONS.md, "Exit status").
@Suite struct OperatorMistakesTests {
    static var tokenfeed: String { productsFolder + "/tokenfeed" }
    static var tokenfeedd: String { productsFolder + "/tokenfeedd" }
    static let stage1 = Fixtures.path("curricula/smollm3/stage1_8T.yaml")

    /// Usage mistakes exit 2, from every command, whether swift-argument-parser or the command
    /// itself finds them.
    @Test(arguments: [
        ["plan", "--bogus"],
        ["plan"],
        ["shard", "import", "--from", "datatrove"],
        ["shard", "import", "--from", "parquet", "x", "--out", "y"],
        ["dump", "--offline"],
        ["cursor", "check"],
        ["stats", "--socket"],
        ["no-such-command"],
    ])
    func usageMistakesOfTheCLIExitTwo(arguments: [String]) throws {
        let result = try run(Self.tokenfeed, arguments)
        #expect(result.status == 2, "tokenfeed \(arguments): \(result.status) \(result.stderr)")
        #expect(!result.stderr.isEmpty)
    }

    @Test(arguments: [["--bogus"], ["--max-open-shards", "0"], ["--ring-slots", "many"]])
    func usageMistakesOfTheDaemonExitTwo(arguments: [String]) throws {
        let result = try run(Self.tokenfeedd, arguments)
        #expect(result.status == 2, "tokenfeedd \(arguments): \(result.status) \(result.stderr)")
    }

    @Test func helpAndVersionExitZero() throws {
        for (tool, arguments) in [(Self.tokenfeed, ["--help"]), (Self.tokenfeed, ["--version"]), (Self.tokenfeed, ["plan", "--help"]),
                                  (Self.tokenfeedd, ["--help"]), (Self.tokenfeedd, ["--version"])] {
            let result = try run(tool, arguments)
            #expect(result.status == 0, "\(tool) \(arguments): \(result.stderr)")
        }
    }

    /// A misspelled setting in the daemon's config file names the closest known one, with its
    /// file:line:column, and exits 2 (the config file holds the daemon's options).
    @Test func misspelledConfigSettingSuggestsTheKnownOne() throws {
        let dir = TemporaryDirectory()
        let config = dir.path + "/tokenfeedd.yaml"
        try "socket: \(dir.path)/s.sock\npreload_byte: 64MiB\n".write(toFile: config, atomically: true, encoding: .utf8)
        let result = try run(Self.tokenfeedd, ["--config", config])
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains("\(config):2:1"), "\(result.stderr)")
        #expect(result.stderr.contains("did you mean \"preload_bytes\"?"), "\(result.stderr)")
    }

    /// A wrong data root gives a summary first (how many folders were found, what the root holds)
    /// and a few lines, not one line per dataset; the exit status is 1 (the inputs do not load).
    @Test func wrongDataRootIsSummarisedBeforeTheFirstFewFolders() throws {
        let dir = TemporaryDirectory()
        let root = dir.sub("root", create: true)
        for name in ["fineweb_edu", "notes"] { _ = dir.sub("root/\(name)", create: true) }
        let result = try run(Self.tokenfeed, ["plan", Self.stage1, "--data-root", root])
        #expect(result.status == 1)
        let lines = result.stderr.split(separator: "\n").filter { $0.contains("error:") }
        let first = try #require(lines.first)
        #expect(first.contains("0 of 41 dataset folders found under \(root); it holds: fineweb_edu, notes"), "\(first)")
        #expect(first.hasPrefix("\(Self.stage1):"), "every line names the curriculum's file:line:column: \(first)")
        #expect(lines.count <= 5, "a wrong data root must not print a line per dataset:\n\(result.stderr)")
        #expect(result.stderr.contains("'fineweb-edu' (\(root)/fineweb-edu) does not exist; did you mean 'fineweb_edu'?"), "\(result.stderr)")
        #expect(result.stderr.contains("38 more dataset folders do not exist: wiki, stackexchange"), "\(result.stderr)")

        let missingRoot = try run(Self.tokenfeed, ["plan", Self.stage1, "--data-root", dir.path + "/nowhere"])
        #expect(missingRoot.status == 1)
        #expect(missingRoot.stderr.contains("0 of 41 dataset folders found under \(dir.path)/nowhere; \(dir.path)/nowhere does not exist"),
                "\(missingRoot.stderr)")
    }

    /// A daemon started on a curriculum whose inputs do not load exits 1 and says why.
    @Test func daemonWithAMissingCurriculumExitsOne() throws {
        let dir = TemporaryDirectory()
        let result = try run(Self.tokenfeedd, ["--curriculum", dir.path + "/missing.yaml", "--data-root", dir.path,
                                               "--socket", dir.path + "/s.sock"])
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("missing.yaml"), "\(result.stderr)")
    }
}
