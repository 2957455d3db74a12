import Foundation
import Testing
import TestSupport
import TokenfeedClient
import TokenfeedEngine
import TokenfeedProtocol
import TokenfeedServer
import TokenfeedSystem

/// Issue 8, points 1, 4 and 8 against the real `tokenfeedd`: files at the socket path and in the
/// state directory, signals, and who may connect.
@Suite struct DaemonSecurityTests {
    private func daemonArguments(_ fixture: ServerFixture, _ extra: [String] = []) -> [String] {
        ["--curriculum", fixture.curriculumPath, "--data-root", fixture.dataRoot, "--socket", fixture.socketPath,
         "--preload-bytes", "1MiB"] + extra
    }

    /// Reads `count` batches and checks them against the offline reference.
    private func expectCorrectBatches(_ client: TokenfeedClient, _ fixture: ServerFixture, from step: inout UInt64, count: Int) throws {
        let slice = RankSlice(rank: 0, worldSize: 1, batchSize: 2)
        for _ in 0 ..< count {
            let batch = try #require(try client.next())
            #expect(batch.step == step)
            #expect(batch.rows.map(\.tokens) == (try fixture.reference(step: step, slice: slice).tokens))
            step += 1
        }
    }

    /// A regular file, a symlink and a live socket at the socket path are left untouched and the
    /// daemon refuses to start, naming the path; a stale socket is replaced.
    @Test func socketPathIsReplacedOnlyWhenItIsAStaleSocket() throws {
        let fixture = try ServerFixture()
        let path = fixture.socketPath
        let precious = Data("checkpoint bytes\n".utf8)
        // A regular file.
        try precious.write(to: URL(fileURLWithPath: path))
        var daemon = try DaemonProcess(daemonArguments(fixture), socket: path)
        #expect(daemon.waitForExit() == 1)
        #expect(daemon.stderr.contains(path) && daemon.stderr.contains("regular file"), "\(daemon.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == precious)
        // A symlink to a file: neither the link nor its target is touched.
        try FileManager.default.removeItem(atPath: path)
        let target = fixture.dir.sub("target.bin")
        try precious.write(to: URL(fileURLWithPath: target))
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
        daemon = try DaemonProcess(daemonArguments(fixture), socket: path)
        #expect(daemon.waitForExit() == 1)
        #expect(daemon.stderr.contains("symbolic link"), "\(daemon.stderr)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: path) == target)
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == precious)
        try FileManager.default.removeItem(atPath: path)
        // A live socket (another process listening).
        let live = try #require(Self.boundSocket(path, listening: true))
        daemon = try DaemonProcess(daemonArguments(fixture), socket: fixture.dir.sub("never"))
        #expect(daemon.waitForExit() == 1)
        #expect(daemon.stderr.contains("another process is listening on \(path)"), "\(daemon.stderr)")
        #expect((try? RawConnection(path: path)) != nil, "the live socket still accepts")
        close(live)
        // Now stale (its listener closed, the file left behind): replaced, and the daemon serves.
        daemon = try DaemonProcess(daemonArguments(fixture), socket: path)
        #expect(daemon.process.isRunning, "\(daemon.stderr)")
        let client = try TokenfeedClient.connect(socketPath: path, rank: 0, worldSize: 1, batchSize: 2, credits: 2)
        var step: UInt64 = 0
        try expectCorrectBatches(client, fixture, from: &step, count: 2)
        #expect(daemon.terminate() == 0)
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    /// The socket exists only with its final mode, and at exit the daemon removes only the inode it
    /// created: a file put at the path meanwhile stays.
    @Test func socketHasItsFinalModeAndOnlyItsOwnInodeIsRemoved() throws {
        let fixture = try ServerFixture()
        let daemon = try DaemonProcess(daemonArguments(fixture, ["--socket-mode", "0600"]), socket: fixture.socketPath)
        let attributes = try FileManager.default.attributesOfItem(atPath: fixture.socketPath)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.dir.path).allSatisfy { !$0.hasPrefix(".tokenfeedd-") },
                "the private bind folder is gone")
        try FileManager.default.removeItem(atPath: fixture.socketPath)
        try Data("someone else's\n".utf8).write(to: URL(fileURLWithPath: fixture.socketPath))
        #expect(daemon.terminate() == 0)
        #expect(try String(contentsOfFile: fixture.socketPath, encoding: .utf8) == "someone else's\n")
    }

    /// Symlinks planted at the temporary names the daemon used to write cursors and stats.json with
    /// (`<file>.partial-<pid>-<n>`) are not followed: their target is untouched, the state is written.
    @Test func stateDirectorySymlinksAreNotFollowed() throws {
        let fixture = try ServerFixture()
        let state = fixture.dir.sub("state")
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        let target = fixture.dir.sub("root-owned-0600")
        try Data("secret\n".utf8).write(to: URL(fileURLWithPath: target))
        chmod(target, 0o600)
        let daemon = try DaemonProcess(daemonArguments(fixture, ["--state-dir", state]), socket: fixture.socketPath)
        let pid = daemon.process.processIdentifier
        // The default job's folder (jobs/_), made before the daemon writes there, so that its temporary names can be planted too.
        try FileManager.default.createDirectory(atPath: state + "/jobs/_", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        for name in ["stats.json", "jobs/_/rank-0.cursor", "jobs/_/stats.json"] {
            for n in 0 ..< 8 {
                try FileManager.default.createSymbolicLink(atPath: "\(state)/\(name).partial-\(pid)-\(n)", withDestinationPath: target)
            }
        }
        let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2, credits: 2)
        var step: UInt64 = 0
        try expectCorrectBatches(client, fixture, from: &step, count: 3)
        client.close()
        _ = eventually(within: 5) { FileManager.default.fileExists(atPath: state + "/jobs/_/rank-0.cursor") }
        #expect(daemon.terminate() == 0)
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "secret\n")
        let stats = try FileManager.default.attributesOfItem(atPath: state + "/stats.json")
        #expect((stats[.type] as? FileAttributeType) == .typeRegular)
        #expect(try String(contentsOfFile: state + "/jobs/_/rank-0.cursor", encoding: .utf8).hasPrefix("tfc1"))
        #expect(!FileManager.default.fileExists(atPath: state + "/rank-0.cursor"), "cursors are kept per job")
        #expect(try FileManager.default.contentsOfDirectory(atPath: state).filter { $0.contains(".tmp-") }.isEmpty)
    }

    /// A state directory that group or others can write is refused before anything is written or bound.
    @Test func groupWritableStateDirectoryIsRefused() throws {
        let fixture = try ServerFixture()
        let state = fixture.dir.sub("state")
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: false)
        chmod(state, 0o775)
        let daemon = try DaemonProcess(daemonArguments(fixture, ["--state-dir", state]), socket: fixture.socketPath)
        #expect(daemon.waitForExit() == 1)
        #expect(daemon.stderr.contains(state) && daemon.stderr.contains("0775"), "\(daemon.stderr)")
        #expect(!FileManager.default.fileExists(atPath: fixture.socketPath))
        #expect(try FileManager.default.contentsOfDirectory(atPath: state).isEmpty)
    }

    /// SIGHUP keeps the daemon and a running stream going, re-opens the log file (after a rotation)
    /// and re-reads the log level; SIGINT then stops like SIGTERM: exit 0, state written, socket removed.
    @Test func sighupReopensTheLogAndSigintStopsCleanly() throws {
        let fixture = try ServerFixture()
        let state = fixture.dir.sub("state")
        let log = fixture.dir.sub("tokenfeedd.log")
        let config = fixture.dir.sub("config.yaml")
        try "log_level: info\n".write(toFile: config, atomically: true, encoding: .utf8)
        let daemon = try DaemonProcess(daemonArguments(fixture, ["--config", config, "--state-dir", state, "--log-file", log]),
                                       socket: fixture.socketPath)
        let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2, credits: 2)
        var step: UInt64 = 0
        try expectCorrectBatches(client, fixture, from: &step, count: 2)
        #expect(try String(contentsOfFile: log, encoding: .utf8).contains("listening"))
        try FileManager.default.moveItem(atPath: log, toPath: log + ".1")
        try "log_level: debug\n".write(toFile: config, atomically: true, encoding: .utf8)
        kill(daemon.process.processIdentifier, SIGHUP)
        #expect(eventually(within: 5) { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("reloaded") })
        #expect(daemon.process.isRunning)
        try expectCorrectBatches(client, fixture, from: &step, count: 3)
        _ = try RawConnection(path: fixture.socketPath)   // a debug-level "accepted" line now
        #expect(eventually(within: 5) { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("accepted") })
        kill(daemon.process.processIdentifier, SIGINT)
        #expect(daemon.waitForExit() == 0, "\(daemon.stderr)")
        #expect(!FileManager.default.fileExists(atPath: fixture.socketPath))
        #expect(FileManager.default.fileExists(atPath: state + "/stats.json"))
    }

    /// SIGTERM: exit 0, stats.json written, socket removed.
    @Test func sigtermWritesStateAndRemovesTheSocket() throws {
        let fixture = try ServerFixture()
        let state = fixture.dir.sub("state")
        let daemon = try DaemonProcess(daemonArguments(fixture, ["--state-dir", state]), socket: fixture.socketPath)
        #expect(daemon.terminate() == 0)
        #expect(!FileManager.default.fileExists(atPath: fixture.socketPath))
        #expect(FileManager.default.fileExists(atPath: state + "/stats.json"))
    }

    /// Another local user (nobody, 65534) is refused with auth_failed and the refusal is logged with
    /// its uid, gid and pid; after `allow_users: [65534]` and SIGHUP it may connect.
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"),
                   "needs root and setpriv to run a client as another user"))
    func anotherUserIsRefusedUntilAllowed() throws {
        let fixture = try ServerFixture()
        chmod(fixture.dir.path, 0o755)
        let config = fixture.dir.sub("config.yaml")
        try "log_level: info\n".write(toFile: config, atomically: true, encoding: .utf8)
        let daemon = try DaemonProcess(daemonArguments(fixture, ["--config", config, "--socket-mode", "0666"]), socket: fixture.socketPath)
        let asNobody = ["--reuid", "65534", "--regid", "65534", "--clear-groups", productsFolder + "/tokenfeed", "stats", "--socket", fixture.socketPath]
        let refused = try run("/usr/bin/setpriv", asNobody)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("auth_failed") || refused.stderr.contains("may not connect"), "\(refused.stderr)")
        #expect(eventually(within: 5) { daemon.stderr.contains("peer not allowed") && daemon.stderr.contains("uid=65534") })
        // Root (this test) is still served.
        let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2, credits: 2)
        var step: UInt64 = 0
        try expectCorrectBatches(client, fixture, from: &step, count: 2)
        try "log_level: info\nallow_users: [65534]\n".write(toFile: config, atomically: true, encoding: .utf8)
        kill(daemon.process.processIdentifier, SIGHUP)
        #expect(eventually(within: 5) { daemon.stderr.contains("reloaded") })
        let allowed = try run("/usr/bin/setpriv", asNobody)
        #expect(allowed.status == 0, "\(allowed.stderr)")
        // Allowed through a supplementary group (SO_PEERGROUPS), while its own gid is not.
        try "log_level: info\nallow_groups: [4242]\n".write(toFile: config, atomically: true, encoding: .utf8)
        kill(daemon.process.processIdentifier, SIGHUP)
        #expect(eventually(within: 5) { daemon.stderr.components(separatedBy: "reloaded").count == 3 })
        #expect(try run("/usr/bin/setpriv", asNobody).status != 0, "65534 is no longer allowed")
        let viaGroup = try run("/usr/bin/setpriv", ["--reuid", "65534", "--regid", "65534", "--groups", "4242"] + asNobody.dropFirst(5))
        #expect(viaGroup.status == 0, "\(viaGroup.stderr)")
        try expectCorrectBatches(client, fixture, from: &step, count: 2)
        #expect(daemon.terminate() == 0)
    }

    /// `allow_users` and `allow_groups` take a YAML list or a comma-separated string of names or ids;
    /// an unknown name is a `file:line:column` error naming it.
    @Test func allowListsInTheConfigFile() throws {
        let config = try ConfigFile.parse(text: "allow_users: [root, 1001]\nallow_groups: \"0, 2000\"\nlog_file: /tmp/x.log\n", path: "c.yaml")
        #expect(config.allowUsers == [0, 1001])
        #expect(config.allowGroups == [0, 2000])
        #expect(config.logFile == "/tmp/x.log")
        do {
            _ = try ConfigFile.parse(text: "log_level: info\nallow_users: [no-such-user-tf]\n", path: "c.yaml")
            Issue.record("an unknown user was accepted")
        } catch {
            #expect(error.description.contains("c.yaml:2:") && error.description.contains("no-such-user-tf"), "\(error.description)")
        }
        let policy = PeerPolicy(users: [1001], groups: [2000])
        #expect(policy.allows(uid: 0, gid: 5) && policy.allows(uid: 1001, gid: 5) && policy.allows(uid: 7, gid: 2000))
        #expect(!policy.allows(uid: 65534, gid: 65534))
        #expect(policy.allows(uid: 65534, gid: 65534, supplementaryGroups: [10, 2000]))
    }

    /// A Unix socket bound at `path` (listening or not), or nil.
    private static func boundSocket(_ path: String, listening: Bool) -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        guard (try? UnixSocketAddress(path: path).bind(fd)) != nil, !listening || listen(fd, 8) == 0 else { close(fd); return nil }
        return fd
    }
}
