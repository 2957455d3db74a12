#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import TestSupport
import TokenfeedClient
import TokenfeedEngine
import TokenfeedProtocol
@testable import TokenfeedServer

/// What one client may take from the daemon (docs/OPERATIONS.md, "Limits"): each abusive case runs
/// against the real daemon while a well-behaved client keeps receiving exactly the offline stream.
@Suite struct ResourceLimitTests {
    /// A daemon on `fixture` with `extra` options, and a streaming client checked against the offline assembly.
    final class Bench {
        let fixture: ServerFixture
        let daemon: DaemonProcess
        let good: TokenfeedClient
        private let slice = RankSlice(rank: 0, worldSize: 1, batchSize: 2)
        private var step: UInt64 = 0

        init(_ extra: [String], preload: String = "1MiB") throws {
            fixture = try ServerFixture()
            daemon = try DaemonProcess(["--curriculum", fixture.curriculumPath, "--data-root", fixture.dataRoot,
                                        "--socket", fixture.socketPath, "--preload-bytes", preload, "--log-level", "warning"] + extra,
                                       socket: fixture.socketPath)
            good = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2, credits: 2, jobID: "good")
        }

        /// The good client's next batches equal the offline stream.
        func goodClientStillCorrect() throws {
            for _ in 0 ..< 3 {
                let batch = try #require(try good.next())
                #expect(batch.step == step)
                #expect(batch.rows.map(\.tokens) == (try fixture.reference(step: step, slice: slice).tokens))
                step += 1
            }
        }

        /// The daemon's resident set in bytes, from /proc/PID/status.
        var residentBytes: Int {
            let status = (try? String(contentsOfFile: "/proc/\(daemon.process.processIdentifier)/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
            return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
        }

        /// Sessions open in the daemon, from a Stats answer.
        func openSessions() throws -> Int {
            let raw = try RawConnection(path: fixture.socketPath)
            raw.send(StatsRequest().encodeFrame(requestID: 1))
            guard case .stats(let stats)? = try raw.nextMessage() else { return -1 }
            return stats.clients.count
        }

        /// A connection that sends StatsRequests without reading the answers until `limit` bytes are
        /// sent or the daemon stops reading (a second of stalled sends); the bytes it could send.
        func floodStatsRequests(upTo limit: Int) throws -> (RawConnection, Int) {
            let flood = try RawConnection(path: fixture.socketPath)
            let request = StatsRequest().encodeFrame(requestID: 1)
            var chunk: [UInt8] = []
            for _ in 0 ..< 4096 { chunk += request }
            var sent = 0
            var stalls = 0
            while sent < limit, stalls < 50 {
                let n = chunk.withUnsafeBytes { Glibc.send(flood.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
                if n > 0 { sent += n; stalls = 0 } else { stalls += 1; usleep(20_000) }
            }
            return (flood, sent)
        }

        func finish() {
            #expect(daemon.process.isRunning)
            #expect(daemon.terminate() == 0, "stderr: \(daemon.stderr)")
        }
    }

    /// Connections over `--max-connections` get `busy` and are closed; a slot that frees up is usable again.
    @Test func connectionsOverTheLimitGetBusy() throws {
        let bench = try Bench(["--max-connections", "3"])
        let idle = try (0 ..< 2).map { _ in try RawConnection(path: bench.fixture.socketPath) }
        #expect(idle.count == 2)
        let refused = try RawConnection(path: bench.fixture.socketPath)
        let error = try #require(try refused.expectErrorThenClose())
        #expect(error.code == .busy && error.detail == "max_connections", "\(error)")
        try bench.goodClientStillCorrect()
        idle[0].finishWriting()
        #expect(try idle[0].nextMessage() == nil)
        var welcomed = false
        for _ in 0 ..< 50 where !welcomed {
            let next = try RawConnection(path: bench.fixture.socketPath)
            next.send(Hello(rank: 0, worldSize: 1, batchSize: 1, initialCredits: 0).encodeFrame())
            if case .welcome? = try next.nextMessage() { welcomed = true } else { usleep(20_000) }
        }
        #expect(welcomed, "a freed connection slot is usable again")
        try bench.goodClientStillCorrect()
        bench.finish()
    }

    /// A connection that sends nothing gets `limit_exceeded` after the handshake timeout and is closed.
    @Test func silentConnectionsTimeOut() throws {
        let bench = try Bench(["--handshake-timeout", "1"])
        let silent = try RawConnection(path: bench.fixture.socketPath)
        let error = try #require(try silent.expectErrorThenClose())
        #expect(error.code == .limitExceeded && error.detail == "handshake_timeout", "\(error)")
        try bench.goodClientStillCorrect()
        bench.finish()
    }

    /// A Hello whose session would exceed the per-session or the total memory limit is refused with
    /// `limit_exceeded` before anything is allocated.
    @Test func batchSizesOverTheMemoryLimitsAreRefusedBeforeAllocating() throws {
        let probe = try ServerFixture()
        func need(_ batchSize: Int) -> Int {
            RankFeed.memoryBytes(stream: probe.stream, batchSize: batchSize, ringSlots: 8, preloadBytes: 1 << 20)
        }
        let big = 4_000
        // Room for the good session and one more of batch size 2 only.
        let total = need(2) * 2 + need(big) / 2
        let bench = try Bench(["--session-memory", "\(need(big) + 1)", "--total-memory", "\(total)"])
        let before = bench.residentBytes
        let huge = try RawConnection(path: bench.fixture.socketPath)
        huge.send(Hello(rank: 0, worldSize: 1, batchSize: 100_000, initialCredits: 1, jobID: "huge").encodeFrame(requestID: 5))
        let perSession = try #require(try huge.nextFrame())
        guard case .error(let error) = perSession.message else { Issue.record("got \(perSession.message)"); return }
        #expect(error.code == .limitExceeded && error.detail == "Hello.batch_size" && error.message.contains("per-session"), "\(error)")
        #expect(perSession.requestID == 5)
        let overTotal = try RawConnection(path: bench.fixture.socketPath)
        overTotal.send(Hello(rank: 0, worldSize: 1, batchSize: UInt32(big), initialCredits: 1, jobID: "big").encodeFrame())
        let totalError = try #require(try overTotal.expectErrorThenClose())
        #expect(totalError.code == .limitExceeded && totalError.message.contains("total"), "\(totalError)")
        #expect(bench.residentBytes < before + 64 << 20, "nothing was allocated for the refused sessions")
        try bench.goodClientStillCorrect()
        bench.finish()
    }

    /// A client that floods StatsRequests and never reads the answers is no longer read once its
    /// outbox is full: the daemon's memory stays bounded, and the connection still closes.
    @Test func unreadAnswersStopReadingNotGrowMemory() throws {
        let bench = try Bench([])
        let before = bench.residentBytes
        let (flood, sent) = try bench.floodStatsRequests(upTo: 48 << 20)
        #expect(sent < 48 << 20, "the daemon stopped reading the flood (\(sent) bytes accepted)")
        try bench.goodClientStillCorrect()
        #expect(bench.residentBytes < before + 96 << 20, "RSS \(before) → \(bench.residentBytes)")
        shutdown(flood.fd, Int32(SHUT_RDWR))     // not close: RawConnection closes its descriptor once, at deinit
        try bench.goodClientStillCorrect()
        bench.finish()
    }

    /// `--outbox-bytes` / `outbox_bytes` set the unread-answer limit: a flood against a 64 KiB outbox
    /// is stopped the same way; values outside 64KiB...1GiB are usage errors naming the flag or the
    /// config file's line and column.
    @Test func outboxLimitIsConfigurableAndValidated() throws {
        let config = try ConfigFile.parse(text: "outbox_bytes: 64KiB\n", path: "c.yaml")
        #expect(config.outboxBytes?.bytes == 64 << 10)
        for bad in ["0", "1KiB", "2GiB", "lots"] {
            do {
                _ = try ConfigFile.parse(text: "log_level: info\noutbox_bytes: \(bad)\n", path: "c.yaml")
                Issue.record("outbox_bytes: \(bad) was accepted")
            } catch {
                #expect(error.description.contains("c.yaml:2:") && error.description.contains("outbox_bytes"), "\(error.description)")
            }
        }
        let fixture = try ServerFixture()
        let refused = try DaemonProcess(["--curriculum", fixture.curriculumPath, "--data-root", fixture.dataRoot,
                                         "--socket", fixture.socketPath, "--outbox-bytes", "100"], socket: fixture.socketPath)
        #expect(refused.waitForExit() == 2)
        #expect(refused.stderr.contains("--outbox-bytes") && refused.stderr.contains("64KiB...1GiB"), "stderr: \(refused.stderr)")

        let bench = try Bench(["--outbox-bytes", "64KiB"])
        let before = bench.residentBytes
        let (flood, sent) = try bench.floodStatsRequests(upTo: 16 << 20)
        #expect(sent < 16 << 20, "the daemon stopped reading the flood (\(sent) bytes accepted)")
        try bench.goodClientStillCorrect()
        #expect(bench.residentBytes < before + 64 << 20, "RSS \(before) → \(bench.residentBytes)")
        // Reading the answers lets the daemon read the requests again: the client gets answers until it stops.
        var answers = 0
        while answers < 200, case .stats? = try flood.nextMessage() { answers += 1 }
        #expect(answers == 200)
        shutdown(flood.fd, Int32(SHUT_RDWR))     // not close: RawConnection closes its descriptor once, at deinit
        try bench.goodClientStillCorrect()
        bench.finish()
    }

    /// A large preload budget over small data: each session's pool is sized from the frames present
    /// and its pages are not faulted in at the Hello.
    @Test func preloadPoolIsSizedFromTheFramesPresent() throws {
        let bench = try Bench([], preload: "512MiB")
        let before = bench.residentBytes
        let sessions = try (0 ..< 4).map { r in
            try TokenfeedClient.connect(socketPath: bench.fixture.socketPath, rank: UInt32(r), worldSize: 4, batchSize: 2, credits: 1, jobID: "big-budget")
        }
        for session in sessions { #expect(try session.next() != nil) }
        #expect(bench.residentBytes < before + 128 << 20, "RSS \(before) → \(bench.residentBytes) with 4 sessions of a 512 MiB budget")
        try bench.goodClientStillCorrect()
        bench.finish()
    }

    /// A shard whose largest frame does not fit twice in the preload budget stops the daemon at
    /// startup, naming the shard.
    @Test func shardsWhoseFramesExceedTheBudgetAreRefusedAtStartup() throws {
        let fixture = try ServerFixture()
        let daemon = try DaemonProcess(["--curriculum", fixture.curriculumPath, "--data-root", fixture.dataRoot,
                                        "--socket", fixture.socketPath, "--preload-bytes", "100"], socket: fixture.socketPath)
        let status = daemon.waitForExit()
        #expect(status != nil && status != 0)
        #expect(daemon.stderr.contains(fixture.dataRoot) && daemon.stderr.contains("--preload-bytes 100"), "stderr: \(daemon.stderr)")
    }

    /// 160 sessions that never read their batches (writers waiting for a full socket, packers for ring
    /// space) hold no Dispatch pool thread: a new session, Stats and the good client are still served.
    /// Under ThreadSanitizer (everything several times slower) the deadline is five times longer.
    @Test func nonReadingSessionsHoldNoPoolThread() throws {
        // 161 sessions of this one test process at once: above the default --session-burst (64), which
        // a process opening that many sessions at once would have to raise.
        let bench = try Bench(["--session-burst", "200"])
        let slowdown: Double = isThreadSanitized ? 5 : 1
        let stalled = try (0 ..< 160).map { i -> RawConnection in
            let raw = try RawConnection(path: bench.fixture.socketPath)
            raw.send(Hello(rank: 0, worldSize: 1, batchSize: 64, initialCredits: 100_000, jobID: "stalled\(i)").encodeFrame())
            return raw
        }
        #expect(stalled.count == 160)
        #expect(eventually(within: 20 * slowdown) { (try? bench.openSessions()) == 161 })
        let late = try TokenfeedClient.connect(socketPath: bench.fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2, jobID: "late")
        #expect(try late.next()?.step == 0)
        try bench.goodClientStillCorrect()
        bench.finish()
    }

    /// Voluntary context switches (sleeps, hence wake-ups) so far of the daemon's connection writers (threads named
    /// ``ConnectionWriter/threadName``), by thread id.
    static func writerWakeUps(pid: Int32) -> [String: Int] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        var wakeUps: [String: Int] = [:]
        for tid in tasks {
            let folder = "/proc/\(pid)/task/\(tid)"
            guard let name = try? String(contentsOfFile: "\(folder)/comm", encoding: .utf8),
                  name.trimmingCharacters(in: .whitespacesAndNewlines) == ConnectionWriter.threadName,
                  let status = try? String(contentsOfFile: "\(folder)/status", encoding: .utf8) else { continue }
            let line = status.split(separator: "\n").first { $0.hasPrefix("voluntary_ctxt_switches:") } ?? ""
            wakeUps[tid] = Int(line.split(separator: "\t").last ?? "") ?? 0
        }
        return wakeUps
    }

    /// Clients that stop reading in the middle of their batches (their sockets full) cost their writers
    /// no wake-ups — each sleeps until its socket drains, on a `DispatchSourceWrite`, not in a polling
    /// loop — and hold no Dispatch thread: meanwhile a new client is served and a stats request
    /// answered. A stalled client that reads again gets every batch intact and in order (the write
    /// source woke its writer), and stalled clients that hang up end their sessions.
    @Test func stalledReadersSleepUntilTheirSocketsDrain() throws {
        let bench = try Bench(["--session-burst", "200"])
        let slowdown: Double = isThreadSanitized ? 5 : 1
        let pid = bench.daemon.process.processIdentifier
        // 100,000 credits of 64-row batches (17 KiB each): a dozen fill the socket, the writer blocks on it.
        let stalled = try (0 ..< 96).map { i -> RawConnection in
            let raw = try RawConnection(path: bench.fixture.socketPath)
            raw.send(Hello(rank: 0, worldSize: 1, batchSize: 64, initialCredits: 100_000, jobID: "stalled\(i)").encodeFrame())
            return raw
        }
        #expect(eventually(within: 20 * slowdown) { (try? bench.openSessions()) == 97 })
        // Every stalled session's writer is blocked on its full socket once its count stops moving.
        var before = Self.writerWakeUps(pid: pid)
        #expect(eventually(within: 20 * slowdown) {
            usleep(500_000)
            let now = Self.writerWakeUps(pid: pid)
            defer { before = now }
            return now.count >= 97 && now.allSatisfy { before[$0.key] == $0.value }
        }, "the writers never settled")
        usleep(2_000_000)
        let after = Self.writerWakeUps(pid: pid)
        let woke = after.filter { entry in before[entry.key].map { entry.value > $0 } ?? false }
        // A writer polling its full socket every 100 ms would have woken about 20 times in these 2 s.
        #expect(woke.count < 10, "\(woke.count) of \(after.count) writers woke while their clients did not read: \(woke)")

        // No thread is held: a new session and a stats request are served at once.
        let late = try TokenfeedClient.connect(socketPath: bench.fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2, jobID: "late")
        #expect(try late.next()?.step == 0)
        #expect(try bench.openSessions() == 98)

        // A stalled client reads again: the Welcome, then batches 0, 1, 2, ... each whole.
        guard case .welcome? = try stalled[0].nextMessage() else { Issue.record("no Welcome"); return }
        for step in 0 ..< UInt64(40) {
            guard case .batch(let batch)? = try stalled[0].nextMessage() else { Issue.record("no batch \(step)"); return }
            #expect(batch.step == step && batch.rows.count == 64)
        }

        // Stalled clients that hang up end their sessions (their writers' blocked sends fail at once).
        for raw in stalled { shutdown(raw.fd, Int32(SHUT_RDWR)) }
        #expect(eventually(within: 20 * slowdown) { (try? bench.openSessions()) == 2 })
        try bench.goodClientStillCorrect()
        bench.finish()
    }

    /// 1,000 sessions opened and ended (by Goodbye, by close, by a refused Hello) leave the daemon's
    /// resident set near its baseline: rings and preload pools are freed whatever ends the session.
    /// Under ThreadSanitizer the daemon's allocator is TSan's (no `malloc_trim`, shadow memory grows
    /// with every address touched), so there it runs 200 sessions with longer deadlines and checks that
    /// they all end and the good client is served, not the resident set.
    @Test func sessionsFreeEverythingWhenTheyEnd() throws {
        // 1,020 set-ups from this one process as fast as it can: no set-up rate limit here (it is tested below).
        let bench = try Bench(["--session-rate", "0"])
        let slowdown: Double = isThreadSanitized ? 5 : 1
        let sessions = isThreadSanitized ? 200 : 1_000
        func cycle(_ i: Int) throws {
            let raw = try RawConnection(path: bench.fixture.socketPath)
            raw.send(Hello(rank: 0, worldSize: 1, batchSize: 64, initialCredits: 1, jobID: "cycle\(i % 7)").encodeFrame())
            guard case .welcome? = try raw.nextMessage() else { Issue.record("no Welcome in cycle \(i)"); return }
            if i % 2 == 0 { raw.send(Goodbye(reason: .done).encodeFrame()) }
            raw.finishWriting()
            while try raw.nextMessage() != nil {}
        }
        for i in 0 ..< 20 { try cycle(i) }      // the good client's session stays open throughout
        #expect(eventually(within: 10 * slowdown) { (try? bench.openSessions()) == 1 })
        let baseline = bench.residentBytes
        for i in 0 ..< sessions { try cycle(i) }
        #expect(eventually(within: 20 * slowdown) { (try? bench.openSessions()) == 1 })
        let after = bench.residentBytes
        if !isThreadSanitized { #expect(after < baseline + 64 << 20, "RSS \(baseline) → \(after) after \(sessions) sessions") }
        try bench.goodClientStillCorrect()
        bench.finish()
    }

    /// A process that sets up sessions faster than `--session-rate` after its `--session-burst` gets
    /// `busy` (`detail` `session_rate`, naming the options) before anything is allocated; another
    /// process is served meanwhile, the good client keeps its stream, and once the rate has refilled
    /// the process may set up a session again.
    @Test func sessionSetUpsOverTheRateGetBusy() throws {
        let bench = try Bench(["--session-rate", "1", "--session-burst", "3"])      // the good client took one set-up
        func hello(_ i: Int) throws -> Message? {
            let raw = try RawConnection(path: bench.fixture.socketPath)
            raw.send(Hello(rank: 0, worldSize: 1, batchSize: 2, initialCredits: 0, jobID: "burst\(i)").encodeFrame(requestID: 9))
            return try raw.nextMessage()
        }
        var welcomed = 0
        var refusal: ErrorMessage?
        for i in 0 ..< 10 where refusal == nil {
            switch try hello(i) {
            case .welcome?: welcomed += 1
            case .error(let error)?: refusal = error
            case let other: Issue.record("got \(String(describing: other))")
            }
        }
        let error = try #require(refusal, "ten set-ups at once were all accepted")
        #expect(welcomed >= 2, "the burst of 3 (one taken by the good client) admitted \(welcomed)")
        #expect(error.code == .busy && error.detail == "session_rate" && error.message.contains("--session-rate"), "\(error)")
        // Another process has a bucket of its own.
        let other = try TestSupport.run(productsFolder + "/tokenfeed", ["dump", "--socket", bench.fixture.socketPath, "--batch-size", "2", "--count", "1", "--json"])
        #expect(other.status == 0, "another process was refused: \(other.stderr)")
        try bench.goodClientStillCorrect()
        // One set-up a second again.
        var again = false
        for i in 0 ..< 30 where !again {
            if case .welcome? = try hello(100 + i) { again = true } else { usleep(200_000) }
        }
        #expect(again, "no set-up admitted within 6 s at --session-rate 1")
        bench.finish()
    }

    /// Until its first Credit a session's packer packs only the batches its Hello's credits ask for
    /// (a client that says Hello and leaves costs no ring's worth of packing); the first Credit lets it
    /// fill the ring.
    @Test func sessionsPackOnlyTheirCreditsUntilTheyRead() throws {
        let bench = try Bench([])
        func stats() throws -> Stats? {
            let raw = try RawConnection(path: bench.fixture.socketPath)
            raw.send(StatsRequest().encodeFrame(requestID: 1))
            guard case .stats(let stats)? = try raw.nextMessage() else { return nil }
            return stats
        }
        try bench.goodClientStillCorrect()
        bench.good.close()
        #expect(eventually(within: 10) { (try? stats())?.clients.count == 0 })
        let lazy = try RawConnection(path: bench.fixture.socketPath)
        lazy.send(Hello(rank: 0, worldSize: 1, batchSize: 2, initialCredits: 3, jobID: "lazy").encodeFrame())
        guard case .welcome? = try lazy.nextMessage() else { Issue.record("no Welcome"); return }
        for step in 0 ..< 3 {
            guard case .batch(let batch)? = try lazy.nextMessage() else { Issue.record("no batch \(step)"); return }
            #expect(batch.step == UInt64(step))
        }
        // Three batches packed and sent, none packed ahead: the ring stays empty.
        usleep(500_000)
        let idle = try #require(try stats())
        #expect(idle.clients.count == 1 && idle.ringCapacity == 8)
        #expect(idle.ringOccupied == 0, "packed ahead before the first Credit: \(idle.ringOccupied) of \(idle.ringCapacity)")
        lazy.send(Credit(count: 1).encodeFrame())
        guard case .batch(let fourth)? = try lazy.nextMessage() else { Issue.record("no batch after the Credit"); return }
        #expect(fourth.step == 3)
        #expect(eventually(within: 10) { (try? stats())?.ringOccupied == 8 }, "the ring was not filled after the first Credit")
        lazy.finishWriting()
        bench.finish()
    }
}
