#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import Synchronization
import TokenfeedEngine
import TokenfeedShards
import SystemPackage
import TokenfeedSystem

/// Where and how `tokenfeedd` logs (docs/OPERATIONS.md, "Logs"): one line per event, written with one
/// `write(2)`, to standard error or to a file (`--log-file`, opened for appending, re-opened on
/// SIGHUP after logrotate moved it). A line is the message first, then the event's fields as
/// `key=value` (text) or one JSON object (`--log-format json`). When standard error is the journal
/// (`JOURNAL_STREAM` names its device and inode) each line starts with its syslog priority (`<3>`
/// error … `<7>` debug) and carries no timestamp (the journal keeps its own); otherwise it starts
/// with an ISO-8601 UTC timestamp and the level. The level and format are shared by every logger
/// and can be changed while running (SIGHUP re-reads `log_level` and `log_format`).
public final class DaemonLog: Sendable {
    /// The log file, nil for standard error.
    public let path: String?
    /// Whether lines go to the journal (standard error is the `JOURNAL_STREAM`): priority prefix, no timestamp.
    public let journal: Bool
    private let descriptor: LockedValue<Int32>
    private let levelIndex: Atomic<Int>
    private let json: Atomic<Bool>

    /// Logs to `path` (created with mode 0640 if missing, never through a symlink) or to standard error.
    /// - Parameter journalStream: the `JOURNAL_STREAM` environment variable (`DEVICE:INODE`), if set.
    /// - Throws: `SystemCallError` naming the file when it cannot be opened.
    public init(path: String?, level: Logger.Level, format: LogFormat = .text,
                journalStream: String? = getenv("JOURNAL_STREAM").map { String(cString: $0) }) throws(SystemCallError) {
        self.path = path
        journal = path == nil && Self.isJournal(fd: 2, journalStream: journalStream)
        descriptor = LockedValue(try path.map { (path: String) throws(SystemCallError) -> Int32 in try Self.open(path) } ?? 2)
        levelIndex = Atomic(Logger.Level.allCases.firstIndex(of: level) ?? 2)
        json = Atomic(format == .json)
    }

    /// The current level.
    public var level: Logger.Level {
        get { Logger.Level.allCases[levelIndex.load(ordering: .relaxed)] }
        set { levelIndex.store(Logger.Level.allCases.firstIndex(of: newValue) ?? 2, ordering: .relaxed) }
    }

    /// The current line format.
    public var format: LogFormat {
        get { json.load(ordering: .relaxed) ? .json : .text }
        set { json.store(newValue == .json, ordering: .relaxed) }
    }

    /// Whether `fd` is the stream systemd connected to the journal: `journalStream` (`JOURNAL_STREAM`,
    /// `DEVICE:INODE` in decimal) names `fd`'s device and inode. A child that inherited the variable
    /// but whose standard error was redirected elsewhere does not match.
    public static func isJournal(fd: Int32, journalStream: String?) -> Bool {
        guard let journalStream else { return false }
        let parts = journalStream.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }

    /// Re-opens the log file (a no-op for standard error); the old descriptor stays in use if the
    /// new one cannot be opened.
    /// - Throws: `SystemCallError` naming the file.
    public func reopen() throws(SystemCallError) {
        guard let path else { return }
        let fd = try Self.open(path)
        let old = descriptor.withLock { current in
            defer { current = fd }
            return current
        }
        _ = close(old)
    }

    /// A swift-log handler writing to this log.
    public func handler(label: String) -> some LogHandler { Handler(sink: self) }

    /// One event as a whole line (newline included) in `format`; `time` (seconds and nanoseconds
    /// since the epoch) is left out under the journal.
    public static func line(level: Logger.Level, message: String, metadata: Logger.Metadata, format: LogFormat,
                            journal: Bool, time: timespec) -> String {
        var out = journal ? "<\(syslogPriority(level))>" : ""
        switch format {
        case .text:
            if !journal { out += timestamp(time) + " " + level.rawValue + " " }
            out += LogEscaping.escaped(message)
            for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
                out += " " + LogEscaping.escaped(key) + "=" + textValue(value)
            }
        case .json:
            out += "{"
            if !journal { out += "\"time\":" + JSONText.string(timestamp(time)) + "," }
            out += "\"level\":" + JSONText.string(level.rawValue) + ",\"message\":" + JSONText.string(message)
            for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
                let name = ["time", "level", "message"].contains(key) ? "field_" + key : key
                out += "," + JSONText.string(name) + ":" + jsonValue(value)
            }
            out += "}"
        }
        return out + "\n"
    }

    /// The syslog priority of a level: critical 2, error 3, warning 4, notice 5, info 6, debug and trace 7.
    public static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .critical: 2
        case .error: 3
        case .warning: 4
        case .notice: 5
        case .info: 6
        case .debug, .trace: 7
        }
    }

    func write(_ line: String) {
        var bytes = Array(line.utf8)
        descriptor.withLock { fd in
            var done = 0
            while done < bytes.count {
                // A log line that cannot be written is dropped: there is nowhere left to report it.
                guard let n = try? systemCall({ bytes.withUnsafeMutableBytes { LibC.write(fd, $0.baseAddress! + done, $0.count - done) } }),
                      n > 0 else { return }
                done += n
            }
        }
    }

    private static func open(_ path: String) throws(SystemCallError) -> Int32 {
        do {
            return try Errno.rethrowing {
                try FileDescriptor.open(FilePath(path), .writeOnly, options: [.append, .create, .noFollow, .closeOnExec],
                                        permissions: FilePermissions(rawValue: 0o640))
            }.rawValue
        } catch {
            throw SystemCallError("open the log file \(path)", errno: error)
        }
    }

    /// `2026-12-02T01:54:07.123Z`.
    static func timestamp(_ time: timespec) -> String {
        var seconds = time.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
        let millis = Int(time.tv_nsec / 1_000_000)
        let fraction = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return String(decoding: buffer[0 ..< count].map { UInt8(bitPattern: $0) }, as: UTF8.self) + "." + fraction + "Z"
    }

    /// A text field's value: as it is when it is a plain word, else quoted with `"` and `\` escaped
    /// and control characters as `\u{XX}`.
    static func textValue(_ value: Logger.MetadataValue) -> String {
        let text = "\(value)"
        let plain = !text.isEmpty && !text.unicodeScalars.contains {
            $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\\" || $0.value < 0x20 || ($0.value >= 0x7F && $0.value <= 0x9F)
        }
        if plain { return text }
        return "\"" + LogEscaping.escaped(text).replacing("\"", with: "\\\"") + "\""
    }

    static func jsonValue(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let text): JSONText.string(text)
        case .stringConvertible(let item): JSONText.string(item.description)
        case .array(let items): "[" + items.map(jsonValue).joined(separator: ",") + "]"
        case .dictionary(let entries):
            "{" + entries.sorted { $0.key < $1.key }.map { JSONText.string($0.key) + ":" + jsonValue($0.value) }.joined(separator: ",") + "}"
        }
    }

    /// swift-log's view of the log: every event becomes one line.
    struct Handler: LogHandler {
        let sink: DaemonLog
        var metadata: Logger.Metadata = [:]

        var logLevel: Logger.Level {
            get { sink.level }
            set {}
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = event.metadata.map { metadata.merging($0) { $1 } } ?? metadata
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            sink.write(DaemonLog.line(level: event.level, message: "\(event.message)", metadata: merged, format: sink.format,
                                      journal: sink.journal, time: now))
        }
    }
}

/// The shape of a log line (`--log-format`, `log_format`).
public enum LogFormat: String, CaseIterable, Sendable, Hashable {
    /// `TIME LEVEL MESSAGE key=value …` (under the journal: `<PRIORITY>MESSAGE key=value …`).
    case text
    /// One JSON object a line: `time` (not under the journal), `level`, `message`, then the fields.
    case json
}
