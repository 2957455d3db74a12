#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Synchronization

/// A progress line on standard error for long commands (`shard import`, `shard verify`, `export`):
/// `import: 3 of 10 files, 1.2 G tokens, 45.6 M tokens/s, 31 %, ETA 1m20s`, rewritten in place
/// twice a second. Only when standard error is a terminal (``start(label:total:unit:sample:)``
/// returns nil otherwise), so logs and pipes stay clean; the line is ended when the command stops it.
final class ProgressLine: Sendable {
    /// What the command has done so far: `done` counts toward `total` (files, shards, sequences,
    /// bytes) and gives the percentage and ETA; `tokens` gives the rate (nil: the rate of `done`).
    typealias Sample = @Sendable () -> (done: UInt64, tokens: UInt64?)

    private let stopped = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    /// Starts the line when standard error is a terminal, else returns nil.
    /// - Parameters:
    ///   - label: the command, printed first (`import`).
    ///   - total: what `done` counts up to.
    ///   - unit: names what `done` counts in the line (`"files"`), or nil to show only the percentage.
    static func start(label: String, total: UInt64, unit: String?, sample: @escaping Sample) -> ProgressLine? {
        guard isatty(2) == 1 else { return nil }
        return ProgressLine(label: label, total: total, unit: unit, sample: sample)
    }

    private init(label: String, total: UInt64, unit: String?, sample: @escaping Sample) {
        let start = DispatchTime.now().uptimeNanoseconds
        DispatchQueue.global().async { [self] in
            while !stopped.load(ordering: .relaxed) {
                usleep(500_000)
                writeToStandardError(Self.render(label: label, total: total, unit: unit, sample: sample(), since: start, final: false))
            }
            // The last state stays on the terminal: the totals and the time taken.
            writeToStandardError(Self.render(label: label, total: total, unit: unit, sample: sample(), since: start, final: true) + "\n")
            finished.signal()
        }
    }

    /// One update: `\r`, the line, and an erase to the end of the terminal line.
    private static func render(label: String, total: UInt64, unit: String?, sample: (done: UInt64, tokens: UInt64?),
                               since start: UInt64, final: Bool) -> String {
        let (done, tokens) = sample
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let fraction = total == 0 ? 1 : min(1, Double(done) / Double(total))
        var line = "\r\(label): "
        if let unit { line += "\(grouped(done)) of \(grouped(total)) \(unit), " }
        if let tokens {
            line += "\(human(tokens)) tokens, \(human(UInt64(Double(tokens) / max(seconds, 1e-3)))) tokens/s, "
        } else {
            line += "\(human(UInt64(Double(done) / max(seconds, 1e-3))))\(unit.map { " \($0)" } ?? "")/s, "
        }
        if final {
            line += "done in \(duration(seconds))"
        } else {
            let eta = fraction > 0 ? seconds * (1 - fraction) / fraction : 0
            line += "\(Int(fraction * 100)) %, ETA \(duration(eta))"
        }
        return line + "\u{1B}[K"
    }

    /// Blanks the line, before the command prints a line of its own (the next update redraws it).
    func clear() { writeToStandardError("\r\u{1B}[K") }

    /// Ends the line (one last newline) and returns once it is written.
    func stop() {
        stopped.store(true, ordering: .relaxed)
        finished.wait()
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }
}

/// A count any thread may increment and read (progress of parallel work).
final class DoneCounter: Sendable {
    private let count = Atomic<UInt64>(0)
    var value: UInt64 { count.load(ordering: .relaxed) }
    func increment() { count.add(1, ordering: .relaxed) }
}

/// One write(2) of `text` to standard error (progress lines; no buffering to interleave).
private func writeToStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}
