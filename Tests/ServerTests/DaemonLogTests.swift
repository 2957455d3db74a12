#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import Testing
import TokenfeedCurriculum
@testable import TokenfeedServer

/// The daemon's log lines (docs/OPERATIONS.md, "Logs"): message first, then escaped `key=value`
/// fields or one JSON object; a syslog priority and no timestamp when standard error is the journal.
@Suite struct DaemonLogTests {
    static let time = timespec(tv_sec: 1_796_176_447, tv_nsec: 45_000_000)   // 2026-12-02T01:54:07.045Z

    @Test func textLinesPutTheMessageFirstAndEscapeFields() {
        let line = DaemonLog.line(level: .warning, message: "closing\nforged", metadata: [
            "reason": "the client is gone", "rank": "3", "job": "a\"b\\c\u{1b}[31m", "empty": "",
        ], format: .text, journal: false, time: Self.time)
        #expect(line == "2026-12-02T01:54:07.045Z warning closing\\u{0a}forged empty=\"\" job=\"a\\\"b\\\\c\\u{1b}[31m\" rank=3 reason=\"the client is gone\"\n")
        let journal = DaemonLog.line(level: .error, message: "data error", metadata: ["shard": "a.zst"], format: .text, journal: true, time: Self.time)
        #expect(journal == "<3>data error shard=a.zst\n")
        #expect([Logger.Level.critical, .error, .warning, .notice, .info, .debug, .trace].map(DaemonLog.syslogPriority) == [2, 3, 4, 5, 6, 7, 7])
    }

    @Test func jsonLinesAreOneObjectEach() throws {
        let line = DaemonLog.line(level: .info, message: "session \"opened\"\n", metadata: [
            "job": "x\u{01}y", "message": "clash", "list": .array(["1", "2"]),
        ], format: .json, journal: false, time: Self.time)
        #expect(line.hasSuffix("}\n") && line.filter { $0 == "\n" }.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["time"] as? String == "2026-12-02T01:54:07.045Z")
        #expect(object["level"] as? String == "info")
        #expect(object["message"] as? String == "session \"opened\"\n")
        #expect(object["job"] as? String == "x\u{01}y")
        #expect(object["field_message"] as? String == "clash")
        #expect(object["list"] as? [String] == ["1", "2"])
        let journal = DaemonLog.line(level: .notice, message: "m", metadata: [:], format: .json, journal: true, time: Self.time)
        #expect(journal == "<5>{\"level\":\"notice\",\"message\":\"m\"}\n")
    }

    @Test func theJournalIsRecognisedByDeviceAndInode() throws {
        var info = stat()
        let fd = open("/dev/null", O_WRONLY)
        defer { close(fd) }
        fstat(fd, &info)
        #expect(DaemonLog.isJournal(fd: fd, journalStream: "\(info.st_dev):\(info.st_ino)"))
        #expect(!DaemonLog.isJournal(fd: fd, journalStream: "\(info.st_dev):\(UInt64(info.st_ino) + 1)"))
        #expect(!DaemonLog.isJournal(fd: fd, journalStream: "garbage"))
        #expect(!DaemonLog.isJournal(fd: fd, journalStream: nil))
    }

    /// The real daemon under each setting: every line of its standard error has the expected shape.
    @Test func theDaemonWritesTheseLines() throws {
        func lines(_ extra: [String], journal: JournalStream) throws -> [Substring] {
            let fixture = try ServerFixture()
            let daemon = try DaemonProcess(["--curriculum", fixture.curriculumPath, "--data-root", fixture.dataRoot,
                                            "--socket", fixture.socketPath, "--preload-bytes", "1MiB"] + extra,
                                           socket: fixture.socketPath, journalStream: journal)
            #expect(daemon.terminate() == 0, "\(daemon.stderr)")
            let lines = daemon.stderr.split(separator: "\n")
            #expect(lines.contains { $0.contains("listening") } && lines.contains { $0.contains("stopped") }, "\(daemon.stderr)")
            return lines
        }
        for line in try lines([], journal: .matching) {
            #expect(line.hasPrefix("<6>") || line.hasPrefix("<5>") || line.hasPrefix("<4>"), "\(line)")
            #expect(!line.dropFirst(3).hasPrefix("20"), "no timestamp under the journal: \(line)")
        }
        #expect(try lines([], journal: .matching).contains { $0.hasPrefix("<6>listening mode=0660 socket=") })
        for line in try lines([], journal: .other) {
            #expect(line.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (trace|debug|info|notice|warning|error|critical) .+/) != nil, "\(line)")
        }
        for line in try lines(["--log-format", "json"], journal: .none) {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["time"] is String && object?["level"] is String && object?["message"] is String, "\(line)")
        }
    }

    @Test func theFormatIsValidated() throws {
        #expect(try ConfigFile.parse(text: "log_format: json\n", path: "c.yaml").logFormat == .json)
        #expect(throws: CurriculumErrors.self) { _ = try ConfigFile.parse(text: "log_format: xml\n", path: "c.yaml") }
        let fixture = try ServerFixture()
        let daemon = try DaemonProcess(["--curriculum", fixture.curriculumPath, "--data-root", fixture.dataRoot,
                                        "--socket", fixture.socketPath, "--log-format", "xml"], socket: fixture.socketPath)
        #expect(daemon.waitForExit() == 2)
        #expect(daemon.stderr.contains("The value 'xml' is invalid for '--log-format <log-format>'. Please provide one of 'text' and 'json'."),
                "\(daemon.stderr)")
    }
}
