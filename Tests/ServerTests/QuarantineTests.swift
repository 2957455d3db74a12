import Foundation
import Logging
import Testing
import TestSupport
import TokenfeedClient
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedProtocol
import TokenfeedServer
import TokenfeedShards

/// The corrupt-data policy (docs/OPERATIONS.md, "Corrupt data"): `fail` stops the daemon at startup
/// or the affected session while serving; `quarantine` drops corrupt shards at startup, the same way
/// on every daemon, and records them in the fingerprint and cursors. Real shard files damaged in
/// place, the real daemon or an in-process server on a real socket, the real client library.
@Suite struct QuarantineTests {
    /// `--verify-shards startup` under `fail`: the real tokenfeedd exits 1 naming the file and frame,
    /// before the socket exists; without the damage it verifies, logs progress and serves.
    @Test func startupVerificationFailsNamingFileAndFrame() throws {
        let fixture = try ServerFixture()
        let daemonPath = productsFolder + "/tokenfeedd"
        let arguments = ["--curriculum", fixture.curriculumPath, "--data-root", fixture.dataRoot, "--socket", fixture.socketPath,
                         "--verify-shards", "startup", "--preload-bytes", "1MiB"]
        let good = try DaemonProcess(arguments, socket: fixture.socketPath)
        let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2)
        #expect(client.welcome.startCursor.quarantineDigest == 0)
        #expect(try client.next()?.rows.map(\.tokens) == (try fixture.reference(step: 0, slice: RankSlice(rank: 0, worldSize: 1, batchSize: 2)).tokens))
        client.close()
        #expect(good.terminate() == 0)
        #expect(!FileManager.default.fileExists(atPath: fixture.socketPath), "the socket file is removed at exit")
        #expect(good.stderr.contains("verifying shards") && good.stderr.contains("verified=7/7"), "\(good.stderr)")

        try fixture.flipByte(in: "web/part-1.zst", frame: 5)
        let bad = try run(daemonPath, arguments)
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("web/part-1.zst: frame 5: checksum mismatch"), "\(bad.stderr)")
        #expect(!FileManager.default.fileExists(atPath: fixture.socketPath), "no socket: no trainer connects to a daemon that cannot serve")
        // Without verification the daemon starts (the metadata is intact): frames are checked when read.
        let lazy = try DaemonProcess(Array(arguments.dropLast(4)) + ["--log-level", "error"], socket: fixture.socketPath)
        #expect(lazy.process.isRunning)
        #expect(lazy.terminate() == 0)
        // Quarantine cannot be combined with skipping verification: a usage error.
        let contradictory = try run(daemonPath, Array(arguments.dropLast(4)) + ["--on-corrupt", "quarantine", "--verify-shards", "none"])
        #expect(contradictory.status == 2)
        #expect(contradictory.stderr.contains("--on-corrupt quarantine"), "\(contradictory.stderr)")
    }

    /// `fail` without startup verification: the rank whose batch needs a corrupt frame receives every
    /// batch before it, then `data_error` naming the shard and frame; another rank of the same job
    /// keeps receiving correct batches, and the daemon keeps serving.
    @Test func midRunCorruptionEndsOnlyTheSessionThatNeedsIt() throws {
        let fixture = try ServerFixture()
        let target = try #require(fixture.frameFirstNeededByRankZero(worldSize: 2, horizon: 400))
        let name = "\(["web", "code", "tiny"][target.dataset])/\(fixture.stream.datasets[target.dataset].shards[target.shard].path.split(separator: "/").last!)"
        try fixture.flipByte(in: name, frame: target.frame)
        let server = try fixture.startServer()
        defer { server.shutdown() }
        let zero = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 2, batchSize: 1, credits: 2, jobID: "j")
        let one = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 1, worldSize: 2, batchSize: 1, credits: 2, jobID: "j")
        var received: [(step: UInt64, tokens: [[UInt32]])] = []
        var failure: ClientError?
        do throws(ClientError) {
            while let batch = try zero.next() { received.append((batch.step, batch.rows.map(\.tokens))) }
        } catch { failure = error }
        #expect(received.map(\.step) == Array(0 ..< target.rankZeroStep), "every batch before the one that needs the corrupt frame")
        for batch in received {
            #expect(batch.tokens == (try fixture.reference(step: batch.step, slice: RankSlice(rank: 0, worldSize: 2, batchSize: 1)).tokens))
        }
        guard let failure, failure.code == .dataError else { Issue.record("rank 0 got \(String(describing: failure))"); return }
        let (message, detail) = (failure.message, failure.detail)
        #expect(detail.hasSuffix("\(name) frame \(target.frame)"), "\(detail)")
        #expect(message.contains("frame \(target.frame)") && message.contains("checksum"), "\(message)")
        let slice = RankSlice(rank: 1, worldSize: 2, batchSize: 1)
        for step in 0 ..< target.rankOneSafeSteps {
            let batch = try #require(try one.next())
            #expect(batch.step == step)
            #expect(batch.rows.map(\.tokens) == (try fixture.reference(step: step, slice: slice).tokens))
        }
        let another = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 1, jobID: "other")
        #expect(try another.next()?.step == 0, "the daemon still serves")
    }

    /// `quarantine`: the daemon starts without the corrupt shard, lists it in stats and the log,
    /// serves exactly the stream of the remaining shards, and every cursor carries the digest.
    @Test func quarantineServesTheStreamOfTheRemainingShards() throws {
        let fixture = try ServerFixture()
        try fixture.flipByte(in: "web/part-0.zst", frame: 3)
        let server = try fixture.startServer(fixture.quarantineOptions())
        defer { server.shutdown() }
        #expect(server.stream.quarantine.entries.map(\.path) == ["web/part-0.zst"])
        #expect(server.stream.quarantine.entries.first?.problem.contains("frame 3") == true)
        let digest = server.stream.quarantine.digest
        #expect(digest != 0)
        #expect(digest == ShardQuarantine(entries: [.init(dataset: 0, path: "web/part-0.zst", problem: "")]).digest, "the digest depends on the paths only")

        let reduced = try fixture.streamWithout(["web/part-0.zst"])
        #expect(server.stream.fingerprint != StreamFingerprint.value(of: reduced), "the quarantine is part of the fingerprint")
        #expect(server.stream.fingerprint == StreamFingerprint.value(of: reduced, quarantine: server.stream.quarantine))
        let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 1, worldSize: 2, batchSize: 3, credits: 4)
        #expect(client.welcome.startCursor.quarantineDigest == digest)
        #expect(client.welcome.fingerprint == server.stream.fingerprint)
        #expect(client.welcome.datasets[0].shardPaths == ["web/part-1.zst", "web/part-2.zst"])
        #expect(client.welcome.datasets[2].shardPaths.count == 3)
        let slice = RankSlice(rank: 1, worldSize: 2, batchSize: 3)
        var differingWebRows = 0
        for step in UInt64(0) ..< 150 {
            let batch = try #require(try client.next())
            #expect(client.cursor.quarantineDigest == digest)
            #expect(client.cursor.fingerprint == server.stream.fingerprint)
            let reference = try fixture.reference(step: step, slice: slice, stream: reduced)
            // Without the quarantine these rows come from part-0, or cannot be read at all where part-0 is corrupt.
            let unquarantined = try? fixture.reference(step: step, slice: slice)
            for (j, row) in batch.rows.enumerated() {
                let record = reference.records[j]
                #expect(row.tokens == reference.tokens[j], "step \(step) row \(j)")
                #expect(row.dataset == record.dataset && row.epoch == record.epoch)
                #expect(row.pieces == reference.pieces[Int(record.firstPiece) ..< Int(record.firstPiece + record.pieceCount)].map {
                    Piece(shardIndex: $0.shard, documentIndex: $0.document, tokenOffset: $0.offset, length: $0.length)
                })
                if row.dataset == 0, row.tokens != unquarantined?.tokens[j] { differingWebRows += 1 }
            }
        }
        #expect(differingWebRows > 100, "web rows come from the remaining shards, not from the quarantined one")
        let stats = try TokenfeedClient.stats(socketPath: fixture.socketPath)
        #expect(stats.datasets.map(\.quarantinedShards) == [1, 0, 0])
        let json = try run(productsFolder + "/tokenfeed", ["stats", "--socket", fixture.socketPath, "--json"])
        let object = try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any]
        let datasets = try #require(object?["datasets"] as? [[String: Any]])
        #expect(datasets.map { $0["quarantined_shards"] as? Int } == [1, 0, 0])
        let text = String(decoding: try run(productsFolder + "/tokenfeed", ["stats", "--socket", fixture.socketPath]).stdout, as: UTF8.self)
        #expect(text.contains("quarantined: 1 corrupt shard left out at startup"), "\(text)")
    }

    /// A cursor is only accepted by a daemon with the same quarantine: one from a daemon without
    /// quarantine is refused by the quarantining daemon and the other way round, naming the
    /// digests; the quarantining daemon's own cursor resumes exactly.
    @Test func resumeAcrossDifferentQuarantinesIsRefused() throws {
        let fixture = try ServerFixture()
        let slice = RankSlice(rank: 0, worldSize: 1, batchSize: 4)
        // A cursor from a healthy daemon (no quarantine) after 3 steps.
        let plainCursor: Cursor
        do {
            let server = try fixture.startServer()
            let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 4)
            _ = try client.rows(batches: 3)
            plainCursor = client.cursor
            #expect(plainCursor.quarantineDigest == 0)
            client.close()
            server.shutdown()
        }
        try fixture.flipByte(in: "web/part-2.zst", frame: 0)
        let quarantining = try fixture.startServer(fixture.quarantineOptions())
        defer { quarantining.shutdown() }
        let refused = refusal { () throws(ClientError) in _ = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 4, cursor: plainCursor) }
        guard let refused, refused.code == .cursorFingerprintMismatch else { Issue.record("got \(String(describing: refused))"); return }
        let (message, detail) = (refused.message, refused.detail)
        #expect(detail == "Hello.cursor.quarantine_digest")
        #expect(message.contains("web/part-2.zst") && message.contains(String(quarantining.stream.quarantine.digest, radix: 16)), "\(message)")

        // The quarantining daemon's own cursor resumes exactly …
        let reduced = try fixture.streamWithout(["web/part-2.zst"])
        let first = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 4)
        _ = try first.rows(batches: 5)
        let quarantineCursor = first.cursor
        first.close()
        #expect(quarantineCursor.quarantineDigest == quarantining.stream.quarantine.digest)
        let resumed = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 4, cursor: quarantineCursor)
        let batch = try #require(try resumed.next())
        #expect(batch.step == 5)
        #expect(batch.rows.map(\.tokens) == (try fixture.reference(step: 5, slice: slice, stream: reduced).tokens))
        resumed.close()

        // … and is refused by a daemon over the same files that quarantines nothing (fail policy, no verification).
        let plain = try fixture.startServer(fixture.options(socket: fixture.dir.sub("plain.sock")))
        defer { plain.shutdown() }
        let refusedByPlain = refusal { () throws(ClientError) in _ = try TokenfeedClient.connect(socketPath: fixture.dir.sub("plain.sock"), rank: 0, worldSize: 1, batchSize: 4, cursor: quarantineCursor) }
        guard let refusedByPlain, refusedByPlain.code == .cursorFingerprintMismatch else { Issue.record("got \(String(describing: refusedByPlain))"); return }
        let (message2, detail2) = (refusedByPlain.message, refusedByPlain.detail)
        #expect(detail2 == "Hello.cursor.quarantine_digest")
        #expect(message2.contains("quarantined no shard"), "\(message2)")
    }

    /// Determinism: two daemons over the same damaged data quarantine the same shards and serve the
    /// same bytes (fingerprint, digest, tokens, provenance), so the nodes of a job agree.
    @Test func twoDaemonsQuarantineAlikeAndServeIdenticalStreams() throws {
        let fixture = try ServerFixture()
        try fixture.flipByte(in: "tiny/shard-1.zst", frame: 2)
        try fixture.flipByte(in: "web/part-0.zst", frame: 7)
        let a = try fixture.startServer(fixture.quarantineOptions(socket: fixture.dir.sub("a.sock")))
        defer { a.shutdown() }
        let b = try fixture.startServer(fixture.quarantineOptions(socket: fixture.dir.sub("b.sock")))
        defer { b.shutdown() }
        #expect(a.stream.quarantine.entries.map(\.path) == ["web/part-0.zst", "tiny/shard-1.zst"])
        #expect(a.stream.quarantine == b.stream.quarantine)
        #expect(a.stream.fingerprint == b.stream.fingerprint)
        let ca = try TokenfeedClient.connect(socketPath: fixture.dir.sub("a.sock"), rank: 2, worldSize: 3, batchSize: 2)
        let cb = try TokenfeedClient.connect(socketPath: fixture.dir.sub("b.sock"), rank: 2, worldSize: 3, batchSize: 2)
        #expect(ca.welcome == cb.welcome)
        let rowsA = try ca.rows(batches: 60)
        let rowsB = try cb.rows(batches: 60)
        #expect(rowsA.count == 120)
        #expect(rowsA == rowsB)
        #expect(ca.cursor == cb.cursor)
        #expect(Set(rowsA.map(\.dataset)) == [0, 1, 2])
    }

    /// A dataset whose every shard is corrupt cannot be served: startup fails naming it.
    @Test func aDatasetWithEveryShardQuarantinedIsAnError() throws {
        let fixture = try ServerFixture()
        try fixture.flipByte(in: "code/part-0.zst", frame: 1)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let error = #expect(throws: ServerStartupError.self) {
            _ = try Server.open(options: fixture.quarantineOptions(), logger: logger)
        }
        #expect(error?.description.contains("dataset code: every shard of") == true, "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: fixture.socketPath))
    }

    /// A shard that verified at startup and breaks later (bit rot, a replaced file) is not
    /// quarantined mid-run — that would desynchronize nodes: the session gets `data_error` saying so.
    @Test func corruptionAfterStartupUnderQuarantineIsADataError() throws {
        let fixture = try ServerFixture()
        try fixture.flipByte(in: "web/part-1.zst", frame: 0)
        let server = try fixture.startServer(fixture.quarantineOptions())
        defer { server.shutdown() }
        try fixture.flipByte(in: "web/part-0.zst", frame: 1)   // after verification, in place (the daemon's descriptor sees it)
        let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 4, credits: 2)
        var failure: ClientError?
        do throws(ClientError) {
            while try client.next() != nil {}
        } catch { failure = error }
        guard let failure, failure.code == .dataError else { Issue.record("got \(String(describing: failure))"); return }
        let (message, detail) = (failure.message, failure.detail)
        #expect(detail.hasSuffix("web/part-0.zst frame 1"), "\(detail)")
        #expect(message.contains("quarantine is decided at startup"), "\(message)")
        #expect(server.stream.quarantine.entries.map(\.path) == ["web/part-1.zst"], "nothing is quarantined after startup")
    }

    /// The config file's keys and their errors.
    @Test func configFileKeys() throws {
        let config = try ConfigFile.parse(text: "on_corrupt: quarantine\nverify_shards: startup\n", path: "d.yaml")
        #expect(config.onCorrupt == .quarantine && config.verifyShards == .startup)
        let error = #expect(throws: CurriculumErrors.self) {
            _ = try ConfigFile.parse(text: "socket: /x\non_corrupt: skip\n", path: "d.yaml")
        }
        let text = error.map { "\($0)" } ?? ""
        #expect(text.contains("d.yaml:2:13") && text.contains("fail, quarantine"), "\(text)")
    }
}

extension ServerFixture {
    /// The fixture's options with `--on-corrupt quarantine` (which verifies every shard at startup).
    func quarantineOptions(socket: String? = nil) -> ServerOptions {
        var options = options(socket: socket)
        options.onCorrupt = .quarantine
        options.verifyShards = .startup
        return options
    }

    /// Flips one bit in the middle of data frame `frame` of the shard at `relative` (below the data
    /// root), in place, so an open descriptor sees it too; the metadata stays intact.
    func flipByte(in relative: String, frame: Int) throws {
        let path = dataRoot + "/" + relative
        let entry = try ShardReader(path: path).frameEntry(frame)
        let at = entry.offset + UInt64(entry.compressedSize / 2)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: at)
        let byte = try #require(try handle.read(upToCount: 1)?.first)
        try handle.seek(toOffset: at)
        try handle.write(contentsOf: [byte ^ 0x20])
        try handle.synchronize()
    }

    /// The stream over the fixture's data without the shards at `relative` paths (the reference a
    /// quarantining daemon must equal).
    func streamWithout(_ relative: Set<String>) throws -> GlobalStream {
        let folders = try curriculum.datasets.map { spec in
            let folder = try #require(spec.folder)
            let kept = try DatasetFolder.shardPaths(in: folder).filter { path in
                !relative.contains { path.hasSuffix("/" + $0) }
            }
            return try DatasetFolder(path: folder, shards: kept.map { try ShardReader(path: $0) })
        }
        return try GlobalStream(curriculum: curriculum, datasets: folders)
    }

    /// A data frame that, with batch size 1 and `worldSize` ranks, rank 0 needs at some step ≥ 2
    /// before rank 1 needs it, with at least 8 steps of rank 1 that do not need it.
    func frameFirstNeededByRankZero(worldSize: UInt64, horizon: UInt64) -> (dataset: Int, shard: Int, frame: Int, rankZeroStep: UInt64, rankOneSafeSteps: UInt64)? {
        struct Key: Hashable { var dataset: Int, shard: Int, frame: Int }
        var firstNeed: [Key: [UInt64: UInt64]] = [:]   // frame → rank → first step
        var order: [Key] = []
        var planner = stream.planner()
        for i in 0 ..< horizon {
            var pieces: [SequencePiece] = []
            guard let record = try? planner.plan(sequence: i, step: i / worldSize, appendingTo: &pieces) else { return nil }
            let d = Int(record.dataset)
            for piece in pieces {
                let metadata = stream.datasets[d].shards[Int(piece.shard)].metadata
                let t = UInt64(metadata.tokensPerFrame)
                for k in piece.offset / t ... (piece.offset + UInt64(piece.length) - 1) / t {
                    let key = Key(dataset: d, shard: Int(piece.shard), frame: Int(k))
                    if firstNeed[key] == nil { order.append(key) }
                    firstNeed[key, default: [:]][i % worldSize] = min(firstNeed[key]?[i % worldSize] ?? .max, i / worldSize)
                }
            }
        }
        for key in order {
            let zero = firstNeed[key]?[0] ?? .max
            let one = firstNeed[key]?[1] ?? horizon / worldSize
            if zero >= 2, zero < .max, one >= zero + 8 { return (key.dataset, key.shard, key.frame, zero, one) }
        }
        return nil
    }
}
