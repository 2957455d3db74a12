import Foundation
import Testing
import TestSupport
import TokenfeedClient
import TokenfeedEngine
import TokenfeedProtocol
import TokenfeedServer
import TokenfeedShards

/// The daemon in process on a real Unix socket, real shard files, the real client library.
@Suite struct ServingTests {
    /// Served batches equal the offline assembly (tokens, dataset, stage, epoch, provenance).
    @Test func servedBatchesEqualTheOfflineAssembly() throws {
        let fixture = try ServerFixture()
        let server = try fixture.startServer()
        defer { server.shutdown() }
        let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 1, worldSize: 2, batchSize: 3, credits: 3)
        #expect(client.welcome.fingerprint == server.stream.fingerprint)
        #expect(client.welcome.sequenceLength == 64)
        #expect(client.welcome.datasets.map(\.name) == ["web", "code", "tiny"])
        let slice = RankSlice(rank: 1, worldSize: 2, batchSize: 3)
        for step in UInt64(0) ..< 25 {
            let batch = try #require(try client.next())
            #expect(batch.step == step)
            #expect(client.cursor == Cursor(fingerprint: server.stream.fingerprint, nextStep: step + 1, worldSize: 2, batchSize: 3))
            let reference = try fixture.reference(step: step, slice: slice)
            for (j, row) in batch.rows.enumerated() {
                let record = reference.records[j]
                #expect(row.tokens == reference.tokens[j])
                #expect(row.sequence == record.sequence && row.dataset == record.dataset && row.stage == record.stage && row.epoch == record.epoch)
                let expected = reference.pieces[Int(record.firstPiece) ..< Int(record.firstPiece + record.pieceCount)].map {
                    Piece(shardIndex: $0.shard, documentIndex: $0.document, tokenOffset: $0.offset, length: $0.length)
                }
                #expect(row.pieces == expected)
                #expect(Array(batch.cuSeqlens(row: j)) == [0] + expected.indices.map { i in expected[...i].reduce(0) { $0 + $1.length } })
            }
            if step == 3 {
                // Tokens in place: the typed view over the receive buffer agrees with the row reads.
                batch.withTokens32 { tokens in #expect(Array(tokens.prefix(65)) == batch.rows[0].tokens) }
            }
        }
        client.close()
    }

    /// Every piece's tokens equal the shard file decompressed by the stock `zstd -dc` at the piece's offset.
    @Test func tokensMatchShardsDecompressedByZstd() throws {
        let fixture = try ServerFixture()
        let server = try fixture.startServer()
        defer { server.shutdown() }
        let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 8)
        var shardTokens: [String: [UInt32]] = [:]
        func tokens(of relative: String) throws -> [UInt32] {
            if let hit = shardTokens[relative] { return hit }
            let path = fixture.dataRoot + "/" + relative
            let raw = try run("/usr/bin/zstd", ["-dc", path]).stdout
            let width = try ShardReader(path: path).metadata.tokenWidth
            let decoded = raw.withUnsafeBytes { b in
                width == .uint16 ? b.bindMemory(to: UInt16.self).map { UInt32(UInt16(littleEndian: $0)) }
                                 : b.bindMemory(to: UInt32.self).map { UInt32(littleEndian: $0) }
            }
            shardTokens[relative] = decoded
            return decoded
        }
        var checkedPieces = 0
        var epochsSeen: Set<UInt32> = []
        for _ in 0 ..< 12 {
            let batch = try #require(try client.next())
            for j in 0 ..< batch.batchSize {
                let row = batch.rows[j]
                epochsSeen.insert(row.epoch)
                var at = 0
                for piece in row.pieces {
                    let shard = try tokens(of: batch.shardPath(row: j, piece: piece))
                    let start = Int(piece.tokenOffset)
                    #expect(Array(row.tokens[at ..< at + Int(piece.length)]) == Array(shard[start ..< start + Int(piece.length)]))
                    at += Int(piece.length)
                    checkedPieces += 1
                }
                #expect(at == 65)
            }
        }
        #expect(checkedPieces > 96)
        #expect(epochsSeen.count > 1, "the tiny dataset wraps into later epochs within these steps")
    }

    /// The ranks of one job, served at once, get disjoint slices that cover the stream, in the same
    /// global order as a one-rank job with the same global batch.
    @Test func ranksOfOneJobGetDisjointSlicesCoveringTheStream() throws {
        let fixture = try ServerFixture()
        let server = try fixture.startServer()
        defer { server.shutdown() }
        let steps = 15
        let collected = LockedRows()
        DispatchQueue.concurrentPerform(iterations: 3) { rank in
            do {
                let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: UInt32(rank), worldSize: 3, batchSize: 2,
                                                         credits: 2, jobID: "job-a")
                collected.append(rank: rank, try client.rows(batches: steps))
                client.close()
            } catch { collected.fail("rank \(rank): \(error)") }
        }
        #expect(collected.failures.isEmpty)
        let all = collected.rows.values.flatMap { $0 }.sorted { $0.sequence < $1.sequence }
        #expect(all.map(\.sequence) == Array(0 ..< UInt64(3 * 2 * steps)))
        for (rank, rows) in collected.rows {
            #expect(rows.allSatisfy { Int($0.sequence % 6) / 2 == rank })
        }
        // The same global order as one rank taking the whole global batch.
        let single = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 6, jobID: "job-b")
        #expect(try single.rows(batches: steps).map(\.tokens) == all.map(\.tokens))
    }

    /// Stage indices change exactly at the first sequence of each stage, observed through the socket.
    @Test func stagesSwitchAtTheExactSequence() throws {
        let fixture = try ServerFixture()
        let server = try fixture.startServer()
        defer { server.shutdown() }
        let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 5)
        let rows = try client.rows(batches: 10)
        for row in rows {
            let expected: UInt32 = row.sequence < 10 ? 0 : row.sequence < 32 ? 1 : 2   // ⌈640/64⌉ = 10, ⌈2000/64⌉ = 32
            #expect(row.stage == expected, "sequence \(row.sequence)")
        }
        #expect(rows.contains { $0.dataset == 2 && $0.stage == 1 })
        #expect(!rows.contains { $0.dataset == 2 && $0.sequence < 10 }, "tiny is not in the warmup mixture")
    }

    /// A client that disconnects mid-stream (batches in flight) and reconnects with the cursor of the
    /// last batch it received continues exactly as an uninterrupted client; so does a job resuming
    /// with another world size and the same global batch.
    @Test func resumeFromACursorContinuesExactly() throws {
        let fixture = try ServerFixture()
        let server = try fixture.startServer()
        defer { server.shutdown() }
        let uninterrupted = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 4, jobID: "a")
        let expected = try uninterrupted.rows(batches: 20)
        uninterrupted.close()

        let first = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 4, credits: 8, jobID: "b")
        let head = try first.rows(batches: 7)
        let cursor = first.cursor
        first.close()   // up to 8 more batches were in flight
        #expect(cursor.nextStep == 7)
        let second = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 4, cursor: cursor, jobID: "b")
        #expect(second.welcome.startCursor == cursor)
        let tail = try second.rows(batches: 5)
        #expect(head + tail == Array(expected[0 ..< 48]))
        // Resume the same position with world size 2 × batch 2 (global batch 4): the same global order.
        let cursor2 = second.cursor
        second.close()
        let ranks = try (0 ..< 2).map {
            try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: UInt32($0), worldSize: 2, batchSize: 2, cursor: cursor2, jobID: "c")
        }
        #expect(ranks[0].welcome.startCursor.nextStep == 12)
        var merged: [ReceivedRow] = []
        for _ in 0 ..< 8 { for client in ranks { merged += try client.rows(batches: 1) } }
        #expect(merged.map(\.sequence) == expected[48 ..< 80].map(\.sequence))
        #expect(merged.map(\.tokens) == expected[48 ..< 80].map(\.tokens))
    }

    /// Job shape disagreements and a rank connected twice are typed errors that leave the job's other
    /// sessions streaming.
    @Test func jobMismatchAndRankInUseLeaveOthersStreaming() throws {
        let fixture = try ServerFixture()
        let server = try fixture.startServer()
        defer { server.shutdown() }
        let good = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 2, batchSize: 2, jobID: "j")
        _ = try good.rows(batches: 2)
        let mismatch = refusal { () throws(ClientError) in
            _ = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 1, worldSize: 4, batchSize: 2, jobID: "j")
        }
        guard let mismatch, mismatch.code == .jobMismatch else { Issue.record("got \(String(describing: mismatch))"); return }
        #expect(mismatch.message.contains("world_size 2") && mismatch.message.contains("world_size 4"))
        #expect(mismatch.detail == "Hello.world_size")
        let batchMismatch = refusal { () throws(ClientError) in
            _ = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 1, worldSize: 2, batchSize: 3, jobID: "j")
        }
        guard batchMismatch?.code == .jobMismatch else { Issue.record("got \(String(describing: batchMismatch))"); return }
        let twice = refusal { () throws(ClientError) in
            _ = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 2, batchSize: 2, jobID: "j")
        }
        guard let twice, twice.code == .rankInUse else { Issue.record("got \(String(describing: twice))"); return }
        #expect(twice.message.contains("rank 0"))
        let rows = try good.rows(batches: 3)
        #expect(rows.map(\.sequence) == [8, 9, 12, 13, 16, 17])
        // Once the job's last session is gone its shape is free again.
        good.close()
        #expect(eventually { server.connectionCount == 0 })
        let other = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 5, jobID: "j")
        #expect(try other.next()?.batchSize == 5)
    }

    /// Cursors of another stream or of a position that is not a step boundary are refused, naming both fingerprints.
    @Test func foreignAndMisalignedCursorsAreRefused() throws {
        let fixture = try ServerFixture()
        let server = try fixture.startServer()
        defer { server.shutdown() }
        let foreign = Cursor(fingerprint: 0x1234, nextStep: 3, worldSize: 1, batchSize: 4)
        do {
            _ = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 4, cursor: foreign)
            Issue.record("a foreign cursor was accepted")
        } catch {
            guard error.code == .cursorFingerprintMismatch else { Issue.record("got \(error)"); return }
            #expect(error.message.contains("0000000000001234"))
            #expect(error.message.contains(String(server.stream.fingerprint, radix: 16)))
        }
        let misaligned = Cursor(fingerprint: server.stream.fingerprint, nextStep: 3, worldSize: 1, batchSize: 3)   // sequence 9
        do {
            _ = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 2, batchSize: 2, cursor: misaligned)
            Issue.record("a misaligned cursor was accepted")
        } catch {
            guard error.code == .badCursor else { Issue.record("got \(error)"); return }
            #expect(error.message.contains("9"))
        }
        #expect(eventually { server.connectionCount == 0 }, "the refused connections are closed")
    }

    /// Every answer to a Hello carries its request id, refusals found while decoding it included.
    @Test func refusalsOfAHelloCarryItsRequestID() throws {
        let fixture = try ServerFixture()
        let server = try fixture.startServer()
        defer { server.shutdown() }
        let raw = try RawConnection(path: fixture.socketPath)
        raw.send(Hello(rank: 2, worldSize: 2, batchSize: 1, initialCredits: 1).encodeFrame(requestID: 9))
        let answer = try #require(try raw.nextFrame())
        guard case .error(let error) = answer.message else { Issue.record("got \(answer.message)"); return }
        #expect(error.code == .rankOutOfRange)
        #expect(answer.requestID == 9)
        let accepted = try RawConnection(path: fixture.socketPath)
        accepted.send(Hello(rank: 0, worldSize: 1, batchSize: 1, initialCredits: 0).encodeFrame(requestID: 77))
        let welcome = try #require(try accepted.nextFrame())
        guard case .welcome = welcome.message else { Issue.record("got \(welcome.message)"); return }
        #expect(welcome.requestID == 77)
    }

    /// A client that stops reading with credit outstanding stalls only itself; one that vanishes in the
    /// middle of a batch frame is cleaned up.
    @Test func slowAndVanishedClientsDoNotDisturbOthers() throws {
        let fixture = try ServerFixture()
        let server = try fixture.startServer()
        defer { server.shutdown() }
        // A big batch (32 rows) with plenty of credit that is never read: the writer fills the socket and waits.
        let stalled = try RawConnection(path: fixture.socketPath)
        stalled.send(Hello(rank: 0, worldSize: 1, batchSize: 32, initialCredits: 1000, jobID: "slow").encodeFrame())
        let vanishing = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 32, credits: 50, jobID: "gone")
        _ = try vanishing.next()
        vanishing.close()   // dozens of batch frames were on their way: the daemon's write fails mid-frame
        let healthy = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2, jobID: "ok")
        let rows = try healthy.rows(batches: 60)
        #expect(rows.map(\.sequence) == Array(0 ..< 120))
        #expect(eventually { server.connectionCount == 2 }, "the vanished client's connection is gone")
        let stats = try TokenfeedClient.stats(socketPath: fixture.socketPath)
        #expect(Set(stats.clients.map(\.jobID)) == ["slow", "ok"])
        #expect(stats.clients.first { $0.jobID == "slow" }!.batchesSent < 1000)
        withExtendedLifetime(stalled) {}
    }

    /// Stats report the current stage and position, tokens served, target and realized shares, epochs and clients.
    @Test func statsDescribeTheDaemon() throws {
        let fixture = try ServerFixture()
        let server = try fixture.startServer()
        defer { server.shutdown() }
        let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 4, credits: 1, jobID: "s")
        _ = try client.rows(batches: 12)   // sequences 0..<48: stage "last" began at 32
        #expect(eventually { (try? TokenfeedClient.stats(socketPath: fixture.socketPath).batchesServed) ?? 0 >= 12 })
        let stats = try TokenfeedClient.stats(socketPath: fixture.socketPath)
        #expect(stats.currentStage == 2)
        #expect(stats.positionSequence >= 48)
        #expect(stats.tokensServed >= 48 * 64)
        #expect(stats.stages.map(\.name) == ["warmup", "middle", "last"])
        #expect(stats.datasets.map(\.targetShare) == [0.6, 0.2, 0.2])
        let inStage = Double(stats.positionSequence - 32)
        let counts = fixture.stream.plan.counts(beforeSequence: stats.positionSequence)
        let before = fixture.stream.plan.counts(beforeSequence: 32)
        for d in 0 ..< 3 {
            #expect(stats.datasets[d].realizedShare == Double(counts[d] - before[d]) / inStage)
            #expect(stats.datasets[d].tokensServed == counts[d] * 64)
        }
        #expect(stats.datasets[2].epoch > 0, "tiny has wrapped")
        let me = try #require(stats.clients.first)
        #expect(me.rank == 0 && me.batchSize == 4 && me.jobID == "s" && me.batchesSent >= 12)
        #expect(stats.ringCapacity == 4)
        #expect(stats.preloadBudgetBytes == 1 << 20)
    }
}

/// The error `body` throws, or nil.
func refusal(_ body: () throws(ClientError) -> Void) -> ClientError? {
    do throws(ClientError) {
        try body()
        return nil
    } catch { return error }
}

/// Rows collected from several threads.
final class LockedRows: @unchecked Sendable {
    private let lock = NSLock()
    private var _rows: [Int: [ReceivedRow]] = [:]
    private var _failures: [String] = []
    func append(rank: Int, _ rows: [ReceivedRow]) { lock.withLock { _rows[rank] = rows } }
    func fail(_ message: String) { lock.withLock { _failures.append(message) } }
    var rows: [Int: [ReceivedRow]] { lock.withLock { _rows } }
    var failures: [String] { lock.withLock { _failures } }
}
