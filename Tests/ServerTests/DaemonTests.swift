import Foundation
import Testing
import TestSupport
import TokenfeedClient
import TokenfeedEngine
import TokenfeedProtocol
import TokenfeedServer

/// The real `tokenfeedd` and `tokenfeed` executables.
@Suite struct DaemonTests {
    /// Malformed frames get a typed Error and a closed connection; the daemon and a client streaming
    /// meanwhile are unaffected; SIGTERM sends shutting_down and exits 0.
    @Test func badInputIsRefusedWithoutDisturbingOthers() throws {
        let fixture = try ServerFixture()
        let daemon = try DaemonProcess(["--curriculum", fixture.curriculumPath, "--data-root", fixture.dataRoot,
                                        "--socket", fixture.socketPath, "--preload-bytes", "1MiB", "--log-level", "error"],
                                       socket: fixture.socketPath)
        let good = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2, credits: 2)
        let slice = RankSlice(rank: 0, worldSize: 1, batchSize: 2)
        var step: UInt64 = 0
        func goodClientStillCorrect() throws {
            for _ in 0 ..< 3 {
                let batch = try #require(try good.next())
                #expect(batch.step == step)
                #expect(batch.rows.map(\.tokens) == (try fixture.reference(step: step, slice: slice).tokens))
                step += 1
            }
        }
        let hello = Hello(rank: 0, worldSize: 1, batchSize: 2, initialCredits: 1).encodeFrame()
        let cases: [(String, [UInt8], ErrorCode?)] = [
            ("wrong magic", rawHeader(magic: Array("XKFD".utf8), type: 1, length: 0), .badMagic),
            ("wrong version", rawHeader(version: 2, type: 1, length: UInt64(hello.count - 24)) + hello[24...], .unsupportedVersion),
            ("oversized length", rawHeader(type: 1, length: 1 << 20), .oversizeFrame),
            ("unknown type", rawHeader(type: 99, length: 0), .unknownMessageType),
            ("garbage", (0 ..< 200).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }, .badMagic),
            ("reserved flags", rawHeader(type: 1, flags: 4, length: 0), .malformedFrame),
            ("world size 0", { var h = hello; h[28] = 0; return h }(), .malformedFrame),
            ("credit before hello", Credit(count: 1).encodeFrame(), .unexpectedMessage),
            ("batch from a client", rawHeader(type: 4, length: 64), .unexpectedMessage),
            ("welcome from a client", rawHeader(type: 2, length: 0), .unexpectedMessage),
            ("stats from a client", rawHeader(type: 6, length: 1 << 30), .unexpectedMessage),
            ("error from a client", ErrorMessage(code: .internalError, message: "client-side").encodeFrame(), .unexpectedMessage),
            ("goodbye as the first frame", Goodbye(reason: .done).encodeFrame(), .unexpectedMessage),
            ("closing mid-frame", Array(hello[0 ..< 30]), nil),
            ("closing mid-header", Array(hello[0 ..< 10]), nil),
        ]
        for (name, bytes, code) in cases {
            let raw = try RawConnection(path: fixture.socketPath)
            raw.send(bytes)
            if let code {
                let error = try #require(try raw.expectErrorThenClose(), "\(name): no Error frame followed by a close")
                #expect(error.code == code, "\(name): \(error.code.name): \(error.message)")
                #expect(!error.message.isEmpty)
            } else {
                raw.finishWriting()
                #expect(try raw.nextMessage() == nil, "\(name): the daemon closes without a frame")
            }
            try goodClientStillCorrect()
        }
        #expect(daemon.process.isRunning)
        // SIGTERM: the streaming client is told the daemon is shutting down, and the daemon exits 0.
        #expect(daemon.terminate() == 0, "stderr: \(daemon.stderr)")
        var shutdownSeen = false
        while true {
            do throws(ClientError) {
                guard try good.next() != nil else { break }
            } catch {
                if error.code == .shuttingDown { shutdownSeen = true } else { Issue.record("after SIGTERM: \(error)") }
                break
            }
        }
        #expect(shutdownSeen)
        #expect(!FileManager.default.fileExists(atPath: fixture.socketPath), "the socket file is removed at exit")
    }

    /// `tokenfeed dump --socket` prints the same JSON lines as `tokenfeed dump --offline` for the same
    /// steps and rank, and stops and resumes by hand with --cursor-out/--cursor-in.
    @Test func socketDumpEqualsOfflineDumpByteForByte() throws {
        let fixture = try ServerFixture()
        let server = try fixture.startServer()
        defer { server.shutdown() }
        let tool = productsFolder + "/tokenfeed"
        let shape = ["--rank", "1", "--world-size", "2", "--batch-size", "3", "--json"]
        let offline = try run(tool, ["dump", "--offline", fixture.curriculumPath, "--data-root", fixture.dataRoot, "--count", "12"] + shape)
        #expect(offline.status == 0, "\(offline.stderr)")
        let online = try run(tool, ["dump", "--socket", fixture.socketPath, "--count", "12"] + shape)
        #expect(online.status == 0, "\(online.stderr)")
        #expect(online.stdout == offline.stdout)
        #expect(String(decoding: online.stdout, as: UTF8.self).split(separator: "\n").count == 36)
        // Stop after 5 steps, resume from the cursor file for 7 more: the same lines.
        let cursorFile = fixture.dir.sub("cursor.txt")
        let head = try run(tool, ["dump", "--socket", fixture.socketPath, "--count", "5", "--cursor-out", cursorFile] + shape)
        let cursor = try Cursor(text: try String(contentsOfFile: cursorFile, encoding: .utf8))
        #expect(cursor.nextStep == 5)
        let tail = try run(tool, ["dump", "--socket", fixture.socketPath, "--count", "7", "--cursor-in", cursorFile] + shape)
        #expect(head.stdout + tail.stdout == offline.stdout)
        // A foreign cursor file is refused with the daemon's typed error.
        try (Cursor(fingerprint: 7, nextStep: 1, worldSize: 2, batchSize: 3).text + "\n").write(toFile: cursorFile, atomically: true, encoding: .utf8)
        let refused = try run(tool, ["dump", "--socket", fixture.socketPath, "--cursor-in", cursorFile] + shape)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("cursor_fingerprint_mismatch"))
        // tokenfeed stats, text and JSON.
        let stats = try run(tool, ["stats", "--socket", fixture.socketPath])
        #expect(stats.status == 0, "\(stats.stderr)")
        let text = String(decoding: stats.stdout, as: UTF8.self)
        #expect(text.contains("▶ last") && text.contains("served by this daemon") && text.contains("stream position")
                && text.contains("datasets in stage last"))
        let json = try run(tool, ["stats", "--socket", fixture.socketPath, "--json"])
        let object = try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any]
        #expect(object?["current_stage"] as? Int == 2)
        #expect((object?["datasets"] as? [Any])?.count == 3)
    }

    /// Bad input is reported before the socket exists: the curriculum's file:line:column, the shard's name.
    @Test func badInputStopsTheDaemonBeforeItListens() throws {
        let fixture = try ServerFixture()
        let broken = fixture.dir.sub("broken.yaml")
        try "sequence_length: 64\nstages:\n  - name: a\n    start: 0\n    end: 640\n    mixture: {web: -1}\n".write(toFile: broken, atomically: true, encoding: .utf8)
        let bad = try run(productsFolder + "/tokenfeedd", ["--curriculum", broken, "--data-root", fixture.dataRoot, "--socket", fixture.socketPath])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("broken.yaml:6:"), "\(bad.stderr)")
        #expect(!FileManager.default.fileExists(atPath: fixture.socketPath))
        // A truncated shard: named, and no socket.
        let shard = fixture.dataRoot + "/code/part-0.zst"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: shard))
        try bytes.prefix(bytes.count - 10).write(to: URL(fileURLWithPath: shard))
        let corrupt = try run(productsFolder + "/tokenfeedd", ["--curriculum", fixture.curriculumPath, "--data-root", fixture.dataRoot, "--socket", fixture.socketPath])
        #expect(corrupt.status == 1)
        #expect(corrupt.stderr.contains("code/part-0.zst"), "\(corrupt.stderr)")
        #expect(!FileManager.default.fileExists(atPath: fixture.socketPath))
        // A bad config file: file, line and column.
        let config = fixture.dir.sub("tokenfeedd.yaml")
        try "socket: \(fixture.socketPath)\nring_slots: lots\n".write(toFile: config, atomically: true, encoding: .utf8)
        let badConfig = try run(productsFolder + "/tokenfeedd", ["--config", config, "--curriculum", fixture.curriculumPath])
        #expect(badConfig.status == 2)
        #expect(badConfig.stderr.contains("tokenfeedd.yaml:2:13"), "\(badConfig.stderr)")
    }

    /// Settings from a config file, the command line winning; the state directory keeps each rank's
    /// last cursor and stats.json.
    @Test func configFileStateDirectoryAndCommandLine() throws {
        let fixture = try ServerFixture()
        let state = fixture.dir.sub("state")
        let config = fixture.dir.sub("tokenfeedd.yaml")
        try """
        curriculum: \(fixture.curriculumPath)
        data_root: \(fixture.dataRoot)
        socket: \(fixture.socketPath)
        socket_mode: "0600"
        state_dir: \(state)
        preload_bytes: 2MiB
        ring_slots: 2
        log_level: error

        """.write(toFile: config, atomically: true, encoding: .utf8)
        let daemon = try DaemonProcess(["--config", config, "--ring-slots", "16"], socket: fixture.socketPath)
        let mode = try FileManager.default.attributesOfItem(atPath: fixture.socketPath)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 3)
        _ = try client.rows(batches: 4)
        let stats = try TokenfeedClient.stats(socketPath: fixture.socketPath)
        #expect(stats.ringCapacity == 16, "the command line wins over ring_slots: 2")
        #expect(stats.preloadBudgetBytes == 2 << 20)
        let cursor = client.cursor
        client.close()
        #expect(daemon.terminate() == 0)
        let saved = try Cursor(text: try String(contentsOfFile: state + "/jobs/_/rank-0.cursor", encoding: .utf8))
        #expect(saved.nextStep >= cursor.nextStep, "the daemon's cursor counts the batches it sent")
        #expect(saved.fingerprint == cursor.fingerprint)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: state + "/stats.json"))) as? [String: Any]
        #expect((json?["batches_served"] as? Int ?? 0) >= 4)
    }

    /// Socket activation: the daemon serves the socket systemd (here systemd-socket-activate) passes as fd 3.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-socket-activate")))
    func socketActivation() throws {
        let fixture = try ServerFixture()
        let activated = fixture.dir.sub("activated.sock")
        let daemon = try DaemonProcess(["-l", activated, productsFolder + "/tokenfeedd", "--curriculum", fixture.curriculumPath,
                                        "--data-root", fixture.dataRoot, "--socket", fixture.dir.sub("unused.sock"), "--log-level", "error"],
                                       socket: activated, executable: "/usr/bin/systemd-socket-activate")
        let client = try TokenfeedClient.connect(socketPath: activated, rank: 0, worldSize: 1, batchSize: 2)
        let rows = try client.rows(batches: 3)
        #expect(rows.map(\.sequence) == [0, 1, 2, 3, 4, 5])
        #expect(!FileManager.default.fileExists(atPath: fixture.dir.sub("unused.sock")))
        client.close()
        #expect(daemon.terminate() == 0)
    }
}
