#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import Synchronization
import TokenfeedEngine
import TokenfeedShards

/// Where `tokenfeedd` logs: standard error, or a file (`--log-file`) opened for appending that
/// SIGHUP re-opens (after logrotate moved it). The level is shared by every logger and can be
/// changed while running (SIGHUP re-reads `log_level`).
public final class DaemonLog: Sendable {
    /// The log file, nil for standard error.
    public let path: String?
    private let descriptor: LockedValue<Int32>
    private let levelIndex: Atomic<Int>

    /// Logs to `path` (created with mode 0640 if missing, never through a symlink) or to standard error.
    /// - Throws: `SystemCallError` naming the file when it cannot be opened.
    public init(path: String?, level: Logger.Level) throws(SystemCallError) {
        self.path = path
        descriptor = LockedValue(try path.map { (path: String) throws(SystemCallError) -> Int32 in try Self.open(path) } ?? 2)
        levelIndex = Atomic(Logger.Level.allCases.firstIndex(of: level) ?? 2)
    }

    /// The current level.
    public var level: Logger.Level {
        get { Logger.Level.allCases[levelIndex.load(ordering: .relaxed)] }
        set { levelIndex.store(Logger.Level.allCases.firstIndex(of: newValue) ?? 2, ordering: .relaxed) }
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
    public func handler(label: String) -> some LogHandler { Handler(label: label, sink: self) }

    func write(_ line: String) {
        var bytes = Array(line.utf8)
        descriptor.withLock { fd in
            var done = 0
            while done < bytes.count {
                let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return }
                done += n
            }
        }
    }

    private static func open(_ path: String) throws(SystemCallError) -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw SystemCallError("open the log file \(path)") }
        return fd
    }

    /// Lines as swift-log's StreamLogHandler writes them: time, level, label, metadata, source, message.
    struct Handler: LogHandler {
        let label: String
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
            let pretty = merged.isEmpty ? "" : " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            sink.write("\(Self.timestamp()) \(event.level) \(label):\(pretty) [\(event.source)] \(event.message)\n")
        }

        private static func timestamp() -> String {
            var now = time(nil)
            var parts = tm()
            localtime_r(&now, &parts)
            var buffer = [CChar](repeating: 0, count: 32)
            let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
            return String(decoding: buffer[0 ..< count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }
}
