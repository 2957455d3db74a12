import Foundation
import Logging
import Testing
import TestSupport
import TokenfeedCurriculum
import TokenfeedServer
@testable import tokenfeedd

/// `tokenfeedd`'s options as typed command-line arguments (`ByteCount`, `FileMode`, the policy
/// enums), the config file merged into them in `validate()` with the command line winning, and the
/// usage errors each bad value gets (docs/OPERATIONS.md, "Options").
@Suite struct DaemonOptionsTests {
    /// The options `tokenfeedd ARGUMENTS` would serve with (parsed and validated as the binary does).
    func options(_ arguments: [String]) throws -> ServerOptions {
        let command = try TokenfeedDaemon.parseAsRoot(arguments)
        return try #require(command as? TokenfeedDaemon).serverOptions
    }

    /// The usage error `tokenfeedd ARGUMENTS` exits 2 with (the message, without the usage lines).
    func usageError(_ arguments: [String]) -> String? {
        parseError(arguments).map { TokenfeedDaemon.message(for: $0) }
    }

    /// The error parsing `ARGUMENTS` throws, or nil; it must be a usage error.
    func parseError(_ arguments: [String]) -> (any Error)? {
        do {
            _ = try TokenfeedDaemon.parseAsRoot(arguments)
            return nil
        } catch {
            #expect(TokenfeedDaemon.exitCode(for: error) == .validationFailure, "\(arguments): \(error)")
            return error
        }
    }

    static let required = ["--curriculum", "c.yaml", "--socket", "s.sock"]

    /// Exactly the forms the daemon accepted before it had a type for them: digits, optionally one of
    /// six suffixes (powers of 1024); no spaces, fractions, lower case, signs before a suffix or overflow.
    @Test func byteCountsAcceptTheDocumentedFormsOnly() {
        let accepted: [(String, Int)] = [("268435456", 268_435_456), ("256MiB", 256 << 20), ("256M", 256 << 20), ("1K", 1024),
                                         ("1KiB", 1024), ("3G", 3 << 30), ("3GiB", 3 << 30), ("0", 0), ("0K", 0), ("+5", 5),
                                         ("8589934592K", 8_589_934_592 << 10)]
        for (text, bytes) in accepted { #expect(ByteCount(text)?.bytes == bytes, "\(text)") }
        for text in ["", "12X", "1.5G", "1 GiB", " 1G", "1gib", "1k", "1KB", "1B", "GiB", "-1", "-1K", "0x10",
                     "9223372036854775807K", "99999999999999999999", "8GiB ", "1e9"] {
            #expect(ByteCount(text) == nil, "\(text) was accepted")
        }
        // The text form is the largest exact binary unit, and reads back as the same count.
        #expect(ByteCount(256 << 20).description == "256MiB" && ByteCount(3 << 30).description == "3GiB")
        #expect(ByteCount(1536).description == "1536" && ByteCount(0).description == "0" && ByteCount(2048).description == "2KiB")
        for bytes in [0, 1, 1000, 1 << 10, 3 << 20, (1 << 30) + 1, Int.max] { #expect(ByteCount(ByteCount(bytes).description)?.bytes == bytes) }
    }

    @Test func fileModesAreOctalWithinRWXForAll() {
        for text in ["660", "0660", "0o660"] { #expect(FileMode(text) == 0o660, "\(text)") }
        #expect(FileMode("0777") == 0o777 && FileMode("0") == 0)
        for text in ["", "0o", "0778", "1000", "4755", "rw-rw----", "0x1b0", "66 0"] { #expect(FileMode(text) == nil, "\(text) was accepted") }
        #expect(FileMode(0o640).description == "0640")
    }

    /// Typed options reach the server options; what is left out keeps its default.
    @Test func theCommandLineIsParsedIntoTypedOptions() throws {
        let options = try options(Self.required + ["--preload-bytes", "64MiB", "--socket-mode", "0600", "--ring-slots", "16",
                                                   "--log-level", "debug", "--log-format", "json", "--on-corrupt", "quarantine",
                                                   "--order", "nanotron", "--session-memory", "1G", "--outbox-bytes", "64KiB",
                                                   "--allow-users", "root, 1001", "--allow-groups", "0", "--metrics-listen", "[::1]:9100"])
        #expect(options.preloadBytes == 64 << 20 && options.socketMode == 0o600 && options.ringSlots == 16)
        #expect(options.logLevel == .debug && options.logFormat == .json && options.order == .nanotron)
        #expect(options.onCorrupt == .quarantine && options.verifyShards == .startup, "quarantine implies startup verification")
        #expect(options.limits.sessionMemoryBytes == 1 << 30 && options.limits.outboxBytes == 64 << 10)
        #expect(options.peerPolicy.users == [0, 1001] && options.peerPolicy.groups == [0])
        #expect(options.metricsListen?.port == 9100 && options.metricsListen?.isIPv6 == true)
        let defaults = try self.options(Self.required)
        #expect(defaults == ServerOptions(curriculumPath: "c.yaml", dataRoot: nil, socketPath: "s.sock"))
    }

    /// Every option the command line leaves out comes from the config file; every one it gives wins.
    @Test func theCommandLineWinsOverTheConfigFile() throws {
        let dir = TemporaryDirectory()
        let config = dir.path + "/tokenfeedd.yaml"
        try """
        curriculum: smollm3.yaml
        socket: /run/tf.sock
        socket_mode: "0640"
        preload_bytes: 1GiB
        ring_slots: 4
        log_level: notice
        order: nanotron
        on_corrupt: quarantine
        session_memory: 512MiB
        max_connections: 9
        allow_groups: [0]
        metrics_listen: 127.0.0.1:9464

        """.write(toFile: config, atomically: true, encoding: .utf8)
        let fromFile = try options(["--config", config])
        #expect(fromFile.curriculumPath == dir.path + "/smollm3.yaml", "relative to the config file's folder")
        #expect(fromFile.socketPath == "/run/tf.sock" && fromFile.socketMode == 0o640 && fromFile.preloadBytes == 1 << 30)
        #expect(fromFile.ringSlots == 4 && fromFile.logLevel == .notice && fromFile.order == .nanotron && fromFile.onCorrupt == .quarantine)
        #expect(fromFile.verifyShards == .startup && fromFile.limits.sessionMemoryBytes == 512 << 20 && fromFile.limits.maxConnections == 9)
        #expect(fromFile.peerPolicy.groups == [0] && fromFile.metricsListen?.port == 9464)
        #expect(fromFile.limits.outboxBytes == ServingLimits().outboxBytes, "neither gives it: the default")

        let overridden = try options(["--config", config, "--curriculum", "other.yaml", "--socket", "x.sock", "--socket-mode", "600",
                                      "--preload-bytes", "8M", "--log-level", "error", "--order", "quota", "--on-corrupt", "fail",
                                      "--session-memory", "3GiB", "--max-connections", "12", "--allow-groups", "1"])
        #expect(overridden.curriculumPath == "other.yaml", "a command-line path is taken as given")
        #expect(overridden.socketPath == "x.sock" && overridden.socketMode == 0o600 && overridden.preloadBytes == 8 << 20)
        #expect(overridden.logLevel == .error && overridden.order == .quota && overridden.onCorrupt == .fail)
        #expect(overridden.verifyShards == .none && overridden.limits.sessionMemoryBytes == 3 << 30 && overridden.limits.maxConnections == 12)
        #expect(overridden.peerPolicy.groups == [1])
        #expect(overridden.ringSlots == 4 && overridden.metricsListen?.port == 9464, "what the command line leaves out still comes from the file")

        // A value the command line gives is checked even where the file has a good one.
        #expect(usageError(["--config", config, "--ring-slots", "1"]) == "--ring-slots: expected 2...1024, got 1")
        // The file's contradiction is found after merging, and the command line can resolve it.
        try "curriculum: c.yaml\nsocket: s.sock\nverify_shards: none\n".write(toFile: config, atomically: true, encoding: .utf8)
        #expect(try options(["--config", config]).verifyShards == .none)
        #expect(usageError(["--config", config, "--on-corrupt", "quarantine"])?.contains("cannot be combined with --verify-shards none") == true)
        #expect(try options(["--config", config, "--on-corrupt", "quarantine", "--verify-shards", "startup"]).verifyShards == .startup)
    }

    /// A malformed size names the option and its accepted forms; a size out of range names the range
    /// and the value as given.
    @Test func badSizesAreUsageErrorsThatSayWhy() throws {
        let malformed = try #require(usageError(Self.required + ["--preload-bytes", "1.5G"]))
        #expect(malformed == "The value '1.5G' is invalid for '--preload-bytes <size>'", "\(malformed)")
        let full = TokenfeedDaemon.fullMessage(for: try #require(parseError(Self.required + ["--session-memory", "2 GiB"])))
        #expect(full.contains("'--session-memory <size>'") && full.contains("K/KiB, M/MiB or G/GiB suffix"), "the option's help is shown: \(full)")
        #expect(usageError(Self.required + ["--preload-bytes", "0"]) == "--preload-bytes: expected a positive byte count, got 0")
        #expect(usageError(Self.required + ["--total-memory", "0K"]) == "--total-memory: expected a positive byte count, got 0")
        #expect(usageError(Self.required + ["--outbox-bytes", "2GiB"]) == "--outbox-bytes: expected a byte count in 64KiB...1GiB, got 2GiB")
        #expect(usageError(Self.required + ["--outbox-bytes", "100"]) == "--outbox-bytes: expected a byte count in 64KiB...1GiB, got 100")
        #expect(usageError(Self.required + ["--socket-mode", "0778"]) == "The value '0778' is invalid for '--socket-mode <mode>'")
        #expect(usageError(Self.required + ["--max-open-shards", "0"]) == "--max-open-shards: expected at least 1, got 0")
        #expect(usageError(Self.required + ["--session-burst", "0"]) == "--session-burst: expected 1...1000000 set-ups, got 0")
        #expect(usageError(Self.required + ["--handshake-timeout", "86401"]) == "--handshake-timeout: expected 1...86400 seconds, got 86401")
    }

    /// The policy enums list the values they take; other mistakes name what is missing or wrong.
    @Test func badValuesAndCombinationsAreUsageErrors() throws {
        #expect(usageError(Self.required + ["--on-corrupt", "skip"])
                == "The value 'skip' is invalid for '--on-corrupt <on-corrupt>'. Please provide one of 'fail' and 'quarantine'.")
        #expect(usageError(Self.required + ["--verify-shards", "all"])
                == "The value 'all' is invalid for '--verify-shards <verify-shards>'. Please provide one of 'none' and 'startup'.")
        #expect(usageError(Self.required + ["--log-level", "loud"])?.hasPrefix("The value 'loud' is invalid for '--log-level <log-level>'") == true)
        #expect(usageError(Self.required + ["--allow-users", "no-such-user-tf"])?.contains("unknown user \"no-such-user-tf\"") == true)
        #expect(usageError(Self.required + ["--metrics-listen", "somewhere"])?.hasPrefix("The value 'somewhere' is invalid for '--metrics-listen <addr:port>'") == true)
        #expect(usageError(Self.required + ["--metrics-listen", "0.0.0.0:9464"])?.contains("needs --metrics-listen-any") == true)
        #expect(try options(Self.required + ["--metrics-listen", "0.0.0.0:9464", "--metrics-listen-any"]).metricsListenAny)
        #expect(usageError(["--socket", "s.sock"]) == "missing --curriculum (or `curriculum:` in the config file)")
        #expect(usageError(["--curriculum", "c.yaml"]) == "missing --socket (or `socket:` in the config file)")
    }

    /// The built binary: a bad size is a usage error (exit 2) saying which option and what it takes.
    @Test func theDaemonExitsTwoOnABadSize() throws {
        let daemon = productsFolder + "/tokenfeedd"
        let malformed = try run(daemon, Self.required + ["--preload-bytes", "8XB"])
        #expect(malformed.status == 2)
        #expect(malformed.stderr.contains("The value '8XB' is invalid for '--preload-bytes <size>'") && malformed.stderr.contains("268435456, 256MiB, 256M"),
                "\(malformed.stderr)")
        let zero = try run(daemon, Self.required + ["--session-memory", "0"])
        #expect(zero.status == 2 && zero.stderr.contains("--session-memory: expected a positive byte count, got 0"), "\(zero.stderr)")
    }
}
