import ArgumentParser
import TokenfeedClient
import TokenfeedProtocol
import TokenfeedServer

/// `tokenfeed stats`: a running daemon's state.
struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show a running daemon's state: stage progress, tokens served, dataset shares, epochs, ring, preload, clients.",
        discussion: """
            --json prints the Stats message as one JSON object (the format of the state directory's stats.json);             --prometheus prints the daemon's metrics in the Prometheus text format, the text its GET /metrics endpoint serves             (docs/OPERATIONS.md, "Metrics"). The text form lists the datasets of the current stage; --all-stages lists every dataset.
            """)

    @Option(help: "The daemon's Unix socket.")
    var socket: String

    @Flag(help: "One JSON object.")
    var json = false

    @Flag(help: "The daemon's metrics in the Prometheus text exposition format (what --metrics-listen serves).")
    var prometheus = false

    @Flag(help: "List every dataset of the curriculum, not only those of the current stage.")
    var allStages = false

    func validate() throws {
        guard !(json && prometheus) else { throw ValidationError("give at most one of --json and --prometheus") }
    }

    func run() throws {
        let stats: Stats
        do { stats = try TokenfeedClient.stats(socketPath: socket, prometheus: prometheus) } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        if prometheus {
            print(stats.prometheusText ?? "", terminator: "")
            return
        }
        print(json ? StatsJSON.render(stats) : StatsText.render(stats, allStages: allStages))
    }
}

/// The human form of a Stats message.
enum StatsText {
    /// The text of `s`: the datasets of the current stage only (those with a target share in it, or
    /// tokens drawn in it), unless `allStages`.
    static func render(_ s: Stats, allStages: Bool = false) -> String {
        let position = s.positionSequence * UInt64(s.sequenceLength)
        var out = "tokenfeedd up \(duration(nanoseconds: s.uptimeMilliseconds * 1_000_000)), \(s.clients.count) client\(s.clients.count == 1 ? "" : "s")\n"
        out += "position: sequence \(s.positionSequence), token \(grouped(position))\n"
        out += "stages:\n"
        let nameWidth = s.stages.map(\.name.count).max() ?? 0
        for (i, stage) in s.stages.enumerated() {
            let span = Double(stage.endToken - stage.startToken)
            let done = position <= stage.startToken ? 0 : min(1, Double(position - stage.startToken) / span)
            let marker = i == Int(s.currentStage) ? "▶" : " "
            out += " \(marker) \(pad(stage.name, nameWidth))  \(bar(done))  \(percent(done))  tokens \(grouped(stage.startToken))…\(grouped(stage.endToken))"
            if i == Int(s.currentStage), position < stage.endToken {
                out += "  (\(grouped(stage.endToken - max(position, stage.startToken))) to the boundary)"
            }
            out += "\n"
        }
        // Two different counts, in two named columns: what this daemon sent since it started (every
        // session, every job, replicas each), and where the stream is (the furthest session; a resumed
        // session starts at its cursor, so this counts across daemon restarts).
        let served = grouped(s.tokensServed), stream = grouped(position)
        let width = max(21, served.count, stream.count)
        out += "          \(leftPad("served by this daemon", width))  \(leftPad("stream position", width))\n"
        out += "tokens    \(leftPad(served, width))  \(leftPad(stream, width))\n"
        out += "batches   \(leftPad(grouped(s.batchesServed), width))  \(leftPad("sequence " + grouped(s.positionSequence), width))\n"
        out += "ring: \(s.ringOccupied) of \(s.ringCapacity) slots ready   preload: \(bytes(s.preloadBytes)) held, budget \(bytes(s.preloadBudgetBytes))\n"
        if !s.datasets.isEmpty {
            let stageName = s.stages.indices.contains(Int(s.currentStage)) ? s.stages[Int(s.currentStage)].name : "?"
            let shown = allStages ? s.datasets : s.datasets.filter { $0.targetShare > 0 || $0.realizedShare > 0 }
            let width = max(7, shown.map(\.name.count).max() ?? 0)
            out += allStages ? "datasets (every stage; shares in stage \(stageName)):\n" : "datasets in stage \(stageName) (--all-stages for every stage's):\n"
            out += "  \(pad("dataset", width))  target  realized  share bar (█ realized, │ target)  stream tokens   epoch\n"
            for d in shown {
                out += "  \(pad(d.name, width))  \(percent(d.targetShare))  \(percent(d.realizedShare))    \(shareBar(d.realizedShare, target: d.targetShare))"
                out += "  \(leftPad(grouped(d.tokensServed), 14))  \(d.epoch)"
                out += d.quarantinedShards > 0 ? "  ⚠ \(d.quarantinedShards) shard\(d.quarantinedShards == 1 ? "" : "s") quarantined\n" : "\n"
            }
            let quarantined = s.datasets.reduce(0) { $0 + Int($1.quarantinedShards) }
            if quarantined > 0 {
                out += "quarantined: \(quarantined) corrupt shard\(quarantined == 1 ? "" : "s") left out at startup (--on-corrupt quarantine; see the daemon's log)\n"
            }
        }
        if !s.clients.isEmpty {
            out += "clients:\n  rank  world × batch  job         credits  next step  sent here  waited total  waited max\n"
            for c in s.clients {
                out += "  \(leftPad("\(c.rank)", 4))  \(leftPad("\(c.worldSize) × \(c.batchSize)", 13))  \(pad(c.jobID.isEmpty ? "-" : c.jobID, 10))"
                out += "  \(leftPad("\(c.credits)", 7))  \(leftPad("\(c.nextStep)", 9))  \(leftPad("\(c.batchesSent)", 9))"
                out += "  \(leftPad(duration(nanoseconds: c.waitNanosecondsTotal), 12))  \(leftPad(duration(nanoseconds: c.waitNanosecondsMax), 10))\n"
            }
        }
        return String(out.dropLast())
    }

    static func bar(_ fraction: Double, width: Int = 20) -> String {
        let filled = Int((max(0, min(1, fraction)) * Double(width)).rounded())
        return "[" + String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled) + "]"
    }

    static func shareBar(_ realized: Double, target: Double, width: Int = 20) -> String {
        let filled = Int((max(0, min(1, realized)) * Double(width)).rounded())
        let mark = min(width - 1, Int((max(0, min(1, target)) * Double(width)).rounded()))
        return String((0 ..< width).map { i in i == mark ? "│" : i < filled ? "█" : "·" })
    }

    static func percent(_ value: Double) -> String { leftPad(String(format1(value * 100)) + "%", 6) }

    static func format1(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(abs(tenths % 10))"
    }

    static func grouped(_ value: UInt64) -> String {
        let digits = Array(String(value))
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out += "," }
            out.append(c)
        }
        return out
    }

    static func bytes(_ value: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(value), u = 0
        while v >= 1024, u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(value) B" : "\(format1(v)) \(units[u])"
    }

    static func duration(nanoseconds: UInt64) -> String {
        if nanoseconds < 1_000_000 { return "\(format1(Double(nanoseconds) / 1000)) µs" }
        if nanoseconds < 1_000_000_000 { return "\(format1(Double(nanoseconds) / 1_000_000)) ms" }
        let seconds = nanoseconds / 1_000_000_000
        if seconds < 120 { return "\(format1(Double(nanoseconds) / 1e9)) s" }
        return seconds < 7200 ? "\(seconds / 60) min" : "\(seconds / 3600) h \((seconds % 3600) / 60) min"
    }

    static func pad(_ s: String, _ width: Int) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }
    static func leftPad(_ s: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }
}
