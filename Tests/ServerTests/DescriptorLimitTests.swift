import Foundation
import Testing
import TestSupport
import TokenfeedShards

/// File descriptors on demand: with `ulimit -n 64` (`prlimit --nofile=64:64`) and 3 datasets × 100
/// shards, `tokenfeed plan`, `tokenfeed dump --offline` and the daemon serving batches work and give
/// what they give without a limit — shards are opened when read and the least recently used closed
/// (`--max-open-shards`; past the limit, `EMFILE` closes idle descriptors and retries).
@Suite struct DescriptorLimitTests {
    let dir = TemporaryDirectory("tffd")
    var dataRoot: String { dir.sub("data") }
    var curriculum: String { dir.sub("c.yaml") }
    let prlimit = ["/usr/bin/prlimit", "--nofile=64:64"]

    init() throws {
        for name in ["a", "b", "c"] {
            let folder = dir.sub("data/" + name, create: true)
            for s in 0 ..< 100 {
                let docs = SyntheticCorpus.documents(seed: UInt64(s * 3 + name.count), count: 6, vocabulary: 30_000, meanLength: 30)
                try SyntheticCorpus.writeShard(docs, path: folder + "/s\(1000 + s).zst", width: .uint16, vocabulary: 30_000, tokensPerFrame: 64)
            }
            try SyntheticCorpus.writeManifest(folder: folder)
        }
        try """
            sequence_length: 64
            seed: 3
            stages:
              - name: all
                start: 0
                end: 2M
                mixture: {a: 1, b: 1, c: 1}
            """.write(toFile: curriculum, atomically: true, encoding: .utf8)
    }

    @Test func planAndOfflineDumpUnder64Descriptors() throws {
        let tool = productsFolder + "/tokenfeed"
        let dump = ["dump", "--offline", curriculum, "--data-root", dataRoot, "--batch-size", "16", "--count", "90", "--json"]
        let free = try run(tool, dump)
        #expect(free.status == 0, "\(free.stderr)")
        for extra in [[], ["--max-open-shards", "8"]] {
            let limited = try run(prlimit[0], Array(prlimit.dropFirst()) + [tool] + dump + extra)
            #expect(limited.status == 0, "\(extra): \(limited.stderr)")
            #expect(limited.stdout == free.stdout, "\(extra)")
        }
        // 90 steps × 16 rows of 64 tokens cover every shard of every dataset (each ~180 tokens).
        let lines = String(decoding: free.stdout, as: UTF8.self)
        for name in ["a", "b", "c"] { #expect(lines.contains("\(name)/s1099.zst"), "\(name)") }
        let plan = try run(prlimit[0], Array(prlimit.dropFirst()) + [tool, "plan", curriculum, "--data-root", dataRoot])
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(!plan.stderr.contains("manifest"), "the manifests are used: \(plan.stderr)")
    }

    @Test func theDaemonServesUnder64Descriptors() throws {
        let socket = dir.sub("s.sock")
        let daemon = try DaemonProcess(Array(prlimit.dropFirst()) + [productsFolder + "/tokenfeedd", "--curriculum", curriculum,
                                       "--data-root", dataRoot, "--socket", socket, "--max-open-shards", "16",
                                       "--max-connections", "8", "--preload-bytes", "1MiB"],
                                       socket: socket, executable: prlimit[0])
        defer { _ = daemon.terminate() }
        let tool = productsFolder + "/tokenfeed"
        let shape = ["--batch-size", "16", "--count", "90", "--json"]
        let online = try run(tool, ["dump", "--socket", socket] + shape)
        #expect(online.status == 0, "\(online.stderr) \(daemon.stderr)")
        let offline = try run(tool, ["dump", "--offline", curriculum, "--data-root", dataRoot] + shape)
        #expect(online.stdout == offline.stdout)
        #expect(!daemon.stderr.contains("manifest"), "\(daemon.stderr)")
    }
}
