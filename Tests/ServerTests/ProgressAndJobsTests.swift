import Foundation
import Testing
import TestSupport
@testable import CommandLineSupport

/// `--jobs` defaults to the CPUs the process may use; long commands show progress on a terminal only.
@Suite struct ProgressAndJobsTests {
    static var tokenfeed: String { productsFolder + "/tokenfeed" }

    @Test func cpuListsAndQuotasParseAsTheKernelWritesThem() {
        #expect(AvailableProcessors.parseCPUList("0-1\n") == 2)
        #expect(AvailableProcessors.parseCPUList("0-3,8,10-11") == 7)
        #expect(AvailableProcessors.parseCPUList("5") == 1)
        #expect(AvailableProcessors.parseCPUList("\t0-1,3\n") == 3, "as /proc/self/status writes it, after a tab")
        #expect(AvailableProcessors.parseCPUList("") == nil)
        #expect(AvailableProcessors.parseCPUList("3-1") == nil)
        #expect(AvailableProcessors.parseCPUList("a-b") == nil)
        #expect(AvailableProcessors.parseCPUMax("max 100000\n") == nil)
        #expect(AvailableProcessors.parseCPUMax("200000 100000\n") == 2)
        #expect(AvailableProcessors.parseCPUMax("150000 100000") == 2, "a fractional quota rounds up")
        #expect(AvailableProcessors.parseCPUMax("50000 100000") == 1)
        #expect(AvailableProcessors.parseCPUMax("0 100000") == nil)
        #expect(AvailableProcessors.count >= 1)
    }

    /// Under `taskset -c 0` the process may use one CPU, and `--help` shows the default it computed.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/taskset")))
    func jobsDefaultFollowsTheAffinityMask() throws {
        for command in [["shard", "import"], ["shard", "verify"], ["export"]] {
            let pinned = try run("/usr/bin/taskset", ["-c", "0", Self.tokenfeed] + command + ["--help"])
            #expect(pinned.status == 0, "\(pinned.stderr)")
            let help = String(decoding: pinned.stdout, as: UTF8.self)
            #expect(help.contains("(default: 1)"), "\(command): \(help)")
        }
    }

    /// Import and verify print a progress line (rate, ETA) on a terminal and nothing of it into a pipe.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/script")))
    func progressOnATerminalOnly() throws {
        let dir = TemporaryDirectory()
        let source = dir.sub("ds", create: true)
        // However short the import, the progress line ends with its totals.
        let documents = SyntheticCorpus.documents(seed: 7, count: 2_000, vocabulary: 50_000, meanLength: 500, eos: 0)
        try SyntheticCorpus.writeDatatrove(documents, width: .uint32, prefix: source + "/part-0")
        let out = dir.sub("shards")

        let piped = try run(Self.tokenfeed, ["shard", "import", "--from", "datatrove", source, "--out", out + "-piped", "--level", "1"])
        #expect(piped.status == 0, "\(piped.stderr)")
        #expect(!piped.stderr.contains("tokens/s") && !piped.stderr.contains("done in"), "no progress into a pipe: \(piped.stderr)")

        // `script` runs the command on a pseudo-terminal and copies what it printed.
        let curriculum = dir.path + "/c.yaml"
        try "sequence_length: 64\nstages:\n  - {name: s, start: 0, end: 1M, mixture: {shards: 1}}\n"
            .write(toFile: curriculum, atomically: true, encoding: .utf8)
        let command = "\(Self.tokenfeed) shard import --from datatrove \(source) --out \(out) --jobs 1"
            + " && \(Self.tokenfeed) shard verify \(out)"
            + " && \(Self.tokenfeed) dump --offline \(curriculum) --data-root \(dir.path) --count 5 > \(dir.path)/dump.txt"
        let onTerminal = try run("/usr/bin/script", ["-qec", command, "/dev/null"])
        let text = String(decoding: onTerminal.stdout, as: UTF8.self)
        #expect(onTerminal.status == 0, "\(text)")
        #expect(text.contains("import: ") && text.contains("tokens/s") && text.contains("done in "), "\(text)")
        #expect(text.contains("verify: 1 of 1 shards"), "\(text)")
        #expect(text.contains("verified 1 shard: 0 bad"), "\(text)")
        #expect(text.contains("dump: 5 of 5 steps"), "a dump into a file shows its progress: \(text)")
        let dumped = try String(contentsOfFile: dir.path + "/dump.txt", encoding: .utf8)
        #expect(!dumped.contains("steps") && !dumped.isEmpty, "records only in the file")
    }
}
