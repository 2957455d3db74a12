import Foundation
import Logging
import SystemPackage
import Testing
import TestSupport
import TokenfeedClient
import TokenfeedServer
@testable import tokenfeedd

/// Why the daemon could not start, as a typed ``ServerStartupError`` from `Server.open`/`start`, and
/// what the built `tokenfeedd` does with each: `tokenfeedd: MESSAGE` on stderr (the messages users
/// saw before the error had a kind) and the kind's exit status (docs/OPERATIONS.md, "Exit status").
@Suite struct StartupErrorTests {
    static let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }()

    /// The error opening and starting a server with `options` throws, or nil when it started (then stopped).
    func startupError(_ options: ServerOptions) -> ServerStartupError? {
        do throws(ServerStartupError) {
            let server = try Server.open(options: options, logger: Self.logger)
            try server.start()
            server.shutdown()
            return nil
        } catch { return error }
    }

    @Test func eachCauseHasItsKind() throws {
        let fixture = try ServerFixture()
        var options = fixture.options()
        options.curriculumPath = fixture.dir.sub("missing.yaml")
        #expect(startupError(options)?.kind == .curriculum)

        options = fixture.options()
        let state = fixture.dir.sub("state", create: true)
        chmod(state, 0o775)
        options.stateDirectory = state
        let insecure = startupError(options)
        #expect(insecure?.kind == .stateDirectory && insecure?.message.contains("0775") == true, "\(String(describing: insecure))")

        options = fixture.options()
        options.preloadBytes = 100
        let budget = startupError(options)
        #expect(budget?.kind == .preloadBudget && budget?.message.contains("--preload-bytes 100") == true, "\(String(describing: budget))")

        // A live daemon on the socket path: in use, with the call's errno.
        let live = try fixture.startServer()
        defer { live.shutdown() }
        let inUse = startupError(fixture.options())
        #expect(inUse?.kind == .socketInUse && inUse?.errno == .addressInUse, "\(String(describing: inUse))")
        #expect(inUse?.description.hasPrefix("another process is listening on \(fixture.socketPath)") == true)

        // Something that is not a stale socket at the path.
        let file = fixture.dir.sub("file.sock")
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        let occupied = startupError(fixture.options(socket: file))
        #expect(occupied?.kind == .socket && occupied?.message.contains("regular file") == true, "\(String(describing: occupied))")

        // Data: a corrupt frame under --verify-shards startup and --on-corrupt fail; a truncated shard.
        try fixture.flipByte(in: "web/part-1.zst", frame: 0)
        options = fixture.options(socket: fixture.dir.sub("verify.sock"))
        options.verifyShards = .startup
        let corrupt = startupError(options)
        #expect(corrupt?.kind == .corruptData && corrupt?.message.contains("web/part-1.zst: frame 0") == true, "\(String(describing: corrupt))")
        let shard = fixture.dataRoot + "/code/part-0.zst"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: shard))
        try bytes.prefix(bytes.count - 10).write(to: URL(fileURLWithPath: shard))
        let truncated = startupError(fixture.options(socket: fixture.dir.sub("truncated.sock")))
        #expect(truncated?.kind == .data && truncated?.message.contains("code/part-0.zst") == true, "\(String(describing: truncated))")
    }

    /// Every kind is a failure (1); usage errors (2) are found before anything starts.
    @Test func everyKindExitsOne() {
        for kind in ServerStartupError.Kind.allCases { #expect(StartupFailure.exitStatus(kind) == 1, "\(kind)") }
    }

    /// The built daemon: each cause prints `tokenfeedd: MESSAGE` and exits 1, before any socket exists.
    @Test func theDaemonExitsOneNamingTheCause() throws {
        let fixture = try ServerFixture()
        let base = ["--curriculum", fixture.curriculumPath, "--data-root", fixture.dataRoot, "--socket", fixture.socketPath]
        let cases: [(extra: [String], says: String)] = [
            (["--log-file", fixture.dir.sub("no-such-folder/tokenfeedd.log")], "open the log file \(fixture.dir.sub("no-such-folder/tokenfeedd.log")): No such file or directory"),
            (["--preload-bytes", "100"], "--preload-bytes 100 holds fewer than two such frames"),
            (["--curriculum", fixture.dir.sub("missing.yaml")], fixture.dir.sub("missing.yaml")),
        ]
        for (extra, says) in cases {
            let result = try run(productsFolder + "/tokenfeedd", base + extra)
            #expect(result.status == 1, "\(extra): \(result.stderr)")
            let line = result.stderr.split(separator: "\n").first { $0.hasPrefix("tokenfeedd: ") }
            #expect(line?.contains(says) == true, "\(extra): \(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: fixture.socketPath))
        }
    }

    /// Under socket activation every failure to start — a usage error found by the parser or
    /// `validate()` (exit 2), a startup failure (exit 1) — is answered to the trainer that woke the
    /// daemon with `internal_error` carrying the reason, not a reset connection.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-socket-activate")),
          arguments: [(["--preload-bytes", "0"], "--preload-bytes: expected a positive byte count, got 0", Int32(2)),
                      (["--order", "random"], "The value 'random' is invalid for '--order <order>'", 2),
                      (["--log-file", "/nonexistent-tokenfeed/x.log"], "open the log file /nonexistent-tokenfeed/x.log", 1)])
    func anActivatedDaemonAnswersWhyItCouldNotStart(extra: [String], reason: String, status: Int32) throws {
        let fixture = try ServerFixture()
        let activated = fixture.dir.sub("activated.sock")
        let daemon = try DaemonProcess(["-l", activated, productsFolder + "/tokenfeedd", "--curriculum", fixture.curriculumPath,
                                        "--data-root", fixture.dataRoot, "--socket", fixture.dir.sub("unused.sock")] + extra,
                                       socket: activated, executable: "/usr/bin/systemd-socket-activate")
        do throws(ClientError) {
            _ = try TokenfeedClient.connect(socketPath: activated, rank: 0, worldSize: 1, batchSize: 2)
            Issue.record("a daemon that cannot start served a session")
        } catch {
            #expect(error.code == .internalError && error.detail == "startup", "\(error)")
            #expect(error.message.hasPrefix("tokenfeedd could not start: ") && error.message.contains(reason), "\(error)")
        }
        #expect(daemon.waitForExit() == status, "\(daemon.stderr)")
    }
}
