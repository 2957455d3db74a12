import Foundation
import Testing
import TestSupport
@testable import TokenfeedServer

/// The files under deploy/: the example config is what the daemon reads (every key, paths relative
/// to the config file), and where systemd's tools are present the units verify, score at most 2.5
/// in `systemd-analyze security` (issue 13 asks for that much), and sysusers.d/tmpfiles.d apply.
@Suite struct DeployFilesTests {
    static let deploy = Fixtures.repositoryRoot + "/deploy"
    static let hasSystemdTools = FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze")
    static let units = ["tokenfeedd.service", "tokenfeedd.socket", "tokenfeedd@.service", "tokenfeedd@.socket"]

    @Test func theExampleConfigParsesWithEveryKey() throws {
        let config = try ConfigFile.load(path: Self.deploy + "/tokenfeedd.yaml")
        #expect(config.curriculumPath == Self.deploy + "/smollm3.yaml", "relative to the config's folder")
        #expect(config.dataRoot == "/data/tokenfeed/shards")
        #expect(config.socketMode == 0o660 && config.preloadBytes?.bytes == 256 << 20 && config.outboxBytes?.bytes == 4 << 20)
        #expect(config.logFormat == .text && config.totalMemoryBytes?.bytes == 16 << 30)
        #expect(config.sessionSetupsPerSecond == 16 && config.sessionSetupBurst == 64)
        let text = try String(contentsOfFile: Self.deploy + "/tokenfeedd.yaml", encoding: .utf8)
        for key in ConfigFile.keys {
            #expect(text.contains("\n\(key):") || text.contains("\n#\(key):"), "the example shows \(key)")
        }
    }

    /// The daemon reads the example (the unit's command line overriding what a node changes) and serves;
    /// a config of its own with relative paths is read from another working directory.
    @Test func theDaemonRunsOnTheExampleAndOnRelativePaths() throws {
        let fixture = try ServerFixture()
        let example = try DaemonProcess(["--config", Self.deploy + "/tokenfeedd.yaml", "--curriculum", fixture.curriculumPath,
                                         "--data-root", fixture.dataRoot, "--socket", fixture.socketPath,
                                         "--state-dir", fixture.dir.sub("state", create: true), "--preload-bytes", "1MiB"],
                                        socket: fixture.socketPath)
        #expect(try RawConnection(path: fixture.socketPath).fd >= 0, "\(example.stderr)")
        #expect(example.terminate() == 0, "\(example.stderr)")

        let folder = fixture.dir.sub("etc", create: true)
        let curriculum = try String(contentsOfFile: fixture.curriculumPath, encoding: .utf8)
        try curriculum.write(toFile: folder + "/curriculum.yaml", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: folder + "/data", withDestinationPath: fixture.dataRoot)
        try "curriculum: curriculum.yaml\ndata_root: data\nsocket: relative.sock\npreload_bytes: 1MiB\n"
            .write(toFile: folder + "/tokenfeedd.yaml", atomically: true, encoding: .utf8)
        #expect(FileManager.default.currentDirectoryPath != folder)
        let relative = try DaemonProcess(["--config", folder + "/tokenfeedd.yaml"], socket: folder + "/relative.sock")
        #expect(relative.process.isRunning, "\(relative.stderr)")
        #expect(FileManager.default.fileExists(atPath: folder + "/relative.sock"))
        #expect(relative.terminate() == 0, "\(relative.stderr)")
    }

    /// Each unit, with ExecStart pointing at the built daemon, passes `systemd-analyze verify`; the
    /// services score at most 2.5 ("OK") in `systemd-analyze security`.
    @Test(.enabled(if: hasSystemdTools)) func theUnitsVerifyAndAreHardened() throws {
        let dir = TemporaryDirectory()
        for unit in Self.units {
            let text = try String(contentsOfFile: Self.deploy + "/systemd/" + unit, encoding: .utf8)
                .replacingOccurrences(of: "/usr/local/bin/tokenfeedd", with: productsFolder + "/tokenfeedd")
            #expect(!text.contains("LimitMEMLOCK"))
            try text.write(toFile: dir.sub(unit.replacingOccurrences(of: "@.", with: "@node1.")), atomically: true, encoding: .utf8)
            if unit.contains("@") { try text.write(toFile: dir.sub(unit), atomically: true, encoding: .utf8) }
        }
        for unit in ["tokenfeedd.service", "tokenfeedd.socket", "tokenfeedd@node1.service", "tokenfeedd@node1.socket"] {
            let verify = try run("/usr/bin/systemd-analyze", ["verify", dir.sub(unit)])
            #expect(verify.status == 0, "\(unit): \(verify.stderr)")
            guard unit.hasSuffix(".service") else { continue }
            let security = try run("/usr/bin/systemd-analyze", ["security", "--offline=yes", "--no-pager", dir.sub(unit)])
            let output = String(decoding: security.stdout, as: UTF8.self) + security.stderr
            let score = output.firstMatch(of: /Overall exposure level for \S+: (\d+\.\d)/).flatMap { Double($0.1) }
            #expect(score.map { $0 <= 2.5 } == true, "\(unit): \(output.suffix(400))")
        }
    }

    /// sysusers.d creates the user and group; tmpfiles.d then creates the folders owned by them.
    @Test(.enabled(if: hasSystemdTools)) func sysusersAndTmpfilesApply() throws {
        let root = TemporaryDirectory()
        for (folder, file) in [("sysusers.d", "tokenfeed.conf"), ("tmpfiles.d", "tokenfeed.conf")] {
            let target = root.sub("etc/" + folder, create: true) + "/" + file
            try FileManager.default.copyItem(atPath: Self.deploy + "/" + folder + "/" + file, toPath: target)
        }
        let users = try run("/usr/bin/systemd-sysusers", ["--root=" + root.path])
        #expect(users.status == 0, "\(users.stderr)")
        let passwd = try String(contentsOfFile: root.sub("etc/passwd"), encoding: .utf8)
        let entry = try #require(passwd.split(separator: "\n").first { $0.hasPrefix("tokenfeed:") })
        #expect(entry.hasSuffix(":/var/lib/tokenfeed:/usr/sbin/nologin") || entry.contains("/var/lib/tokenfeed"), "\(entry)")
        let uid = try #require(Int(entry.split(separator: ":")[2]))
        let folders = try run("/usr/bin/systemd-tmpfiles", ["--create", "--root=" + root.path])
        #expect(folders.status == 0, "\(folders.stderr)")
        for (path, mode) in [("var/lib/tokenfeed", 0o700), ("run/tokenfeed", 0o755), ("var/log/tokenfeed", 0o750)] {
            let attributes = try FileManager.default.attributesOfItem(atPath: root.sub(path))
            #expect((attributes[.ownerAccountID] as? NSNumber)?.intValue == uid, "\(path)")
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == mode, "\(path)")
        }
    }
}
