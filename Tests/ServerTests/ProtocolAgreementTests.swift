import Foundation
import Testing
import TokenfeedEngine
import TokenfeedProtocol
@testable import TokenfeedServer

/// The cases where docs/PROTOCOL.md and the daemon once disagreed, and client strings in the logs.
@Suite struct ProtocolAgreementTests {
    /// A `job_id` with a newline and terminal escapes is logged escaped: it cannot forge a log line.
    @Test func clientJobIDIsEscapedInTheLog() throws {
        let fixture = try ServerFixture()
        let daemon = try DaemonProcess(["--curriculum", fixture.curriculumPath, "--data-root", fixture.dataRoot,
                                        "--socket", fixture.socketPath, "--preload-bytes", "1MiB", "--log-level", "info"],
                                       socket: fixture.socketPath)
        let forged = "evil\n2026-01-01T00:00:00Z critical forged line \u{1B}[31m\u{7F}\u{85}"
        let raw = try RawConnection(path: fixture.socketPath)
        raw.send(Hello(rank: 0, worldSize: 1, batchSize: 1, initialCredits: 0, jobID: forged).encodeFrame())
        guard case .welcome? = try raw.nextMessage() else { Issue.record("no Welcome"); return }
        // A second Hello of the same job and rank: its refusal names the job, and is logged too.
        let twice = try RawConnection(path: fixture.socketPath)
        twice.send(Hello(rank: 0, worldSize: 1, batchSize: 1, initialCredits: 0, jobID: forged).encodeFrame())
        #expect(try twice.expectErrorThenClose()?.code == .rankInUse)
        raw.send(Goodbye(reason: .done).encodeFrame())
        #expect(daemon.terminate() == 0)
        let log = daemon.stderr
        #expect(log.contains("evil\\u{0a}2026-01-01T00:00:00Z critical forged line \\u{1b}[31m\\u{7f}\\u{85}"), "log: \(log)")
        #expect(!log.contains("\ncritical") && !log.contains("\n2026-01-01T00:00:00Z critical"))
        #expect(!log.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{7F}" || $0 == "\u{85}" })
    }

    @Test func logEscapingCoversC0DelAndC1() {
        #expect(LogEscaping.escaped("plain job-1 ü") == "plain job-1 ü")
        #expect(LogEscaping.escaped("a\nb\r\t\u{0}") == "a\\u{0a}b\\u{0d}\\u{09}\\u{00}")
        #expect(LogEscaping.escaped("\u{7F}\u{80}\u{9F}\u{A0}") == "\\u{7f}\\u{80}\\u{9f}\u{A0}")
        #expect(LogEscaping.escaped("back\\slash") == "back\\\\slash")
    }

    /// After the last step the daemon sends Goodbye(end_of_stream) at once, without waiting for a
    /// Credit; a session resumed exactly at the end gets its Welcome, then Goodbye; past the end is `bad_cursor`.
    @Test func endOfStreamNeedsNoCreditAndResumingAtTheEnd() throws {
        let fixture = try ServerFixture(end: "3200")      // 50 sequences: 5 steps of 1 × 10
        let server = try fixture.startServer()
        defer { server.shutdown() }
        let steps = server.stream.stepCount(worldSize: 1, batchSize: 10)
        #expect(steps == 5)
        let raw = try RawConnection(path: fixture.socketPath)
        raw.send(Hello(rank: 0, worldSize: 1, batchSize: 10, initialCredits: UInt32(steps)).encodeFrame())
        guard case .welcome? = try raw.nextMessage() else { Issue.record("no Welcome"); return }
        for step in 0 ..< steps {
            guard case .batch(let batch)? = try raw.nextMessage() else { Issue.record("no batch \(step)"); return }
            #expect(batch.step == step)
        }
        guard case .goodbye(let bye)? = try raw.nextMessage() else { Issue.record("no Goodbye with zero credits left"); return }
        #expect(bye.reason == .endOfStream)
        #expect(try raw.nextMessage() == nil)

        let atEnd = try RawConnection(path: fixture.socketPath)
        let endCursor = Cursor(fingerprint: server.stream.fingerprint, nextStep: steps, worldSize: 1, batchSize: 10)
        atEnd.send(Hello(rank: 0, worldSize: 1, batchSize: 10, initialCredits: 0, cursor: endCursor).encodeFrame())
        guard case .welcome? = try atEnd.nextMessage() else { Issue.record("no Welcome at the end"); return }
        guard case .goodbye(let last)? = try atEnd.nextMessage() else { Issue.record("no Goodbye at the end"); return }
        #expect(last.reason == .endOfStream)

        let past = try RawConnection(path: fixture.socketPath)
        let pastCursor = Cursor(fingerprint: server.stream.fingerprint, nextStep: steps + 1, worldSize: 1, batchSize: 10)
        past.send(Hello(rank: 0, worldSize: 1, batchSize: 10, initialCredits: 0, cursor: pastCursor).encodeFrame())
        #expect(try past.expectErrorThenClose()?.code == .badCursor)
    }
}
