import Foundation
import Testing
import TestSupport
import TokenfeedClient
import TokenfeedEngine
import TokenfeedProtocol

/// The daemon keeps bestfit row counts in its state directory: a restarted daemon serves the same
/// rows from them (docs/PACKING.md, "The row-count cache").
@Suite struct BestFitCacheDaemonTests {
    @Test func stateDirectoryHoldsRowCountsAcrossRestarts() throws {
        let fixture = try ServerFixture()
        let curriculum = fixture.dir.sub("bestfit.yaml")
        try """
            sequence_length: 64
            seed: 2
            packing: {mode: bestfit, pad_token: 0, lookahead: 8}
            stages:
              - name: only
                start: 0
                end: 4M
                mixture:
                  web: 1
                  code: 1
            """.write(toFile: curriculum, atomically: true, encoding: .utf8)
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
}
