import Foundation
import Testing
import TestSupport
import TokenfeedClient
@testable import TokenfeedEngine
import TokenfeedProtocol
import TokenfeedShards

/// The daemon keeps bestfit row counts in its state directory: a restarted daemon serves the same
/// rows from them (docs/PACKING.md, "The row-count cache").
@Suite struct BestFitCacheDaemonTests {
    /// Writes a one-stage bestfit curriculum (sequences of 64 tokens) over the fixture's datasets; its path.
    static func curriculum(_ fixture: ServerFixture, seed: Int, lookahead: Int, end: String, mixture: [String: Int]) throws -> String {
        let path = fixture.dir.sub("bestfit.yaml")
        let weights = mixture.keys.sorted().map { "      \($0): \(mixture[$0]!)\n" }.joined()
        try ("sequence_length: 64\nseed: \(seed)\npacking: {mode: bestfit, pad_token: 0, lookahead: \(lookahead)}\n"
             + "stages:\n  - name: only\n    start: 0\n    end: \(end)\n    mixture:\n" + weights)
            .write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func stateDirectoryHoldsRowCountsAcrossRestarts() throws {
        let fixture = try ServerFixture()
        let curriculum = try Self.curriculum(fixture, seed: 2, lookahead: 8, end: "4M", mixture: ["web": 1, "code": 1])
        let state = fixture.dir.sub("state")
        let arguments = ["--curriculum", curriculum, "--data-root", fixture.dataRoot, "--socket", fixture.socketPath,
                         "--state-dir", state]
        // A far resume makes the daemon count every shard's rows once and save them.
        func farRows() throws -> [[UInt32]] {
            let probe = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2)
            let cursor = Cursor(fingerprint: probe.welcome.fingerprint, nextStep: 20_000, worldSize: 1, batchSize: 2)
            probe.close()
            let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2, cursor: cursor)
            defer { client.close() }
            return try client.rows(batches: 2).map(\.tokens)
        }
        let first = try DaemonProcess(arguments, socket: fixture.socketPath)
        let rowsBefore = try farRows()
        #expect(first.terminate() == 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: state + "/bestfit-rows").filter { $0.hasSuffix(".bin") }
        #expect(files.count == 2, "one row-count file per dataset: \(files)")
        let second = try DaemonProcess(arguments, socket: fixture.socketPath)
        #expect(try farRows() == rowsBefore)
        #expect(second.terminate() == 0)
        #expect(!second.stderr.contains("bestfit row-count cache"), "the saved counts were used as they are: \(second.stderr)")
    }

    /// With an empty cache the daemon counts every shard's rows in the background after READY and
    /// writes each dataset's file; a far resume while the count runs, and one after it, are served
    /// exactly the batches `tokenfeed dump --offline` computes.
    @Test func backgroundCountFillsTheCacheAndFarResumesServeTheOfflineBytes() throws {
        let fixture = try ServerFixture()
        let curriculum = try Self.curriculum(fixture, seed: 5, lookahead: 4, end: "200M", mixture: ["web": 2, "code": 1, "tiny": 1])
        let state = fixture.dir.sub("state")
        let cacheFolder = state + "/bestfit-rows"
        let daemon = try DaemonProcess(["--curriculum", curriculum, "--data-root", fixture.dataRoot, "--socket", fixture.socketPath,
                                        "--state-dir", state], socket: fixture.socketPath)
        defer { _ = daemon.terminate() }
        let tool = productsFolder + "/tokenfeed"
        let shape = ["--rank", "1", "--world-size", "2", "--batch-size", "3", "--json"]
        // The batches served from step `step` on, resuming with a cursor, and those dump --offline computes.
        func farResume(step: UInt64) throws -> (served: Data, offline: Data) {
            let probe = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 1, worldSize: 2, batchSize: 3)
            let cursorFile = fixture.dir.sub("cursor-\(step).txt")
            try (Cursor(fingerprint: probe.welcome.fingerprint, nextStep: step, worldSize: 2, batchSize: 3).text + "\n")
                .write(toFile: cursorFile, atomically: true, encoding: .utf8)
            probe.close()
            let served = try run(tool, ["dump", "--socket", fixture.socketPath, "--count", "3", "--cursor-in", cursorFile] + shape)
            #expect(served.status == 0, "\(served.stderr)")
            let offline = try run(tool, ["dump", "--offline", curriculum, "--data-root", fixture.dataRoot, "--step", "\(step)", "--count", "3"] + shape)
            #expect(offline.status == 0, "\(offline.stderr)")
            return (served.stdout, offline.stdout)
        }
        // At once: the background count may still be running (the resume counts what it needs itself).
        let early = try farResume(step: 150_000)
        #expect(!early.served.isEmpty)
        #expect(early.served == early.offline)

        #expect(eventually(within: 120) { daemon.stderr.contains("bestfit rows counted in the background") }, "\(daemon.stderr)")
        #expect(daemon.stderr.contains("counting bestfit rows in the background"))
        // One validated file per dataset, holding every shard's count as counted afresh.
        let rowTokens = 65, lookahead = 4
        let store = BestFitRowStore(directory: cacheFolder, rowTokens: rowTokens, lookahead: lookahead)
        for name in ["web", "code", "tiny"] {
            let folder = try DatasetFolder.open(path: fixture.dataRoot + "/" + name)
            let path = store.path(forDatasetFolder: folder.path)
            let entries = try #require(try store.load(path: path), "\(path) was written")
            #expect(entries.count == folder.shards.count)
            let fresh = BestFitRowCache(folders: [folder], rowTokens: rowTokens, lookahead: lookahead)
            try fresh.countAll()
            for (s, shard) in folder.shards.enumerated() {
                let entry = try #require(entries[try BestFitShardKey.of(shard)], "\(shard.path) is in \(path)")
                #expect(entry.rows == fresh.rows(dataset: 0, shard: s), "\(shard.path)")
            }
        }
        // After the count: a far resume at another step, from the finished counts.
        let late = try farResume(step: 420_000)
        #expect(!late.served.isEmpty)
        #expect(late.served == late.offline)
        #expect(daemon.terminate() == 0)
    }
}
