import CoreMetrics
import Prometheus
import TokenfeedProtocol
import TokenfeedSystem

/// The daemon's Prometheus metrics (docs/OPERATIONS.md, "Metrics"), in the text exposition format
/// written by swift-prometheus.
///
/// Two kinds of values:
/// - **Waits** (`tokenfeed_client_wait_seconds`, `tokenfeed_daemon_wait_seconds`) are events: a writer
///   records one, with relaxed atomics (``WaitHistogram``), only after it actually waited (for its packer,
///   or for the client's credit). A scrape hands the waits since the previous scrape to swift-metrics
///   `Timer`s backed by swift-prometheus histograms in a registry that lives as long as the daemon.
/// - **Everything else** is read at scrape time from the atomics the serving path already keeps
///   (``ServerCounters``, ``RankTally``, the connections, the frame cache) and written into a fresh
///   registry per scrape, so a scrape never sees a series of a job the daemon has forgotten.
final class DaemonMetrics: Sendable {
    /// Bucket bounds of the wait histograms.
    static let waitBuckets: [Duration] = [.microseconds(100), .microseconds(500), .milliseconds(1), .milliseconds(5), .milliseconds(10),
                                          .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5), .seconds(30)]
    /// Jobs whose stream position, stage and dataset series a scrape includes at most (those with an
    /// open session first, then the most recently served).
    static let maximumJobsWithProgress = 64

    private let events = PrometheusCollectorRegistry()
    /// A trainer had credit but the daemon had no batch ready: how long until it had (per wait).
    let clientWait = WaitHistogram(bounds: waitBuckets)
    /// The daemon had a batch ready but the trainer had no credit left: how long until it sent credit.
    let daemonWait = WaitHistogram(bounds: waitBuckets)
    private let clientWaitTimer: CoreMetrics.Timer
    private let daemonWaitTimer: CoreMetrics.Timer

    init() {
        var factory = PrometheusMetricsFactory(registry: events)
        factory.defaultDurationHistogramBuckets = Self.waitBuckets
        clientWaitTimer = Timer(label: "tokenfeed_client_wait_seconds", dimensions: [], factory: factory)
        daemonWaitTimer = Timer(label: "tokenfeed_daemon_wait_seconds", dimensions: [], factory: factory)
    }

    /// The exposition text of `server`'s metrics now.
    func render(_ server: Server) -> String {
        let registry = PrometheusCollectorRegistry()
        Snapshot(server: server, registry: registry).fill()
        return Self.inStableOrder(registry.emitToString() + waitsText())
    }

    /// The two wait histograms, with the waits recorded since the last call handed over first.
    func waitsText() -> String {
        clientWait.drain(into: clientWaitTimer)
        daemonWait.drain(into: daemonWaitTimer)
        return events.emitToString()
    }

    /// `text` (swift-prometheus' output, whose families and series come in hash order, different in
    /// every process and scrape) with its families sorted by name and, within a counter or gauge
    /// family, its series sorted; a histogram's lines keep their order (bucket bounds ascending). So the
    /// same state always gives the same bytes, and two scrapes diff line by line. Lines are moved, never
    /// rewritten.
    static func inStableOrder(_ text: String) -> String {
        var families: [(name: String, comments: [Substring], samples: [Substring], histogram: Bool)] = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# ") {
                let parts = line.split(separator: " ", maxSplits: 3)
                let name = parts.count > 2 ? String(parts[2]) : ""
                if families.last?.name != name || !(families.last?.samples.isEmpty ?? false) {
                    families.append((name, [], [], false))
                }
                families[families.count - 1].comments.append(line)
                if parts.count > 3, parts[1] == "TYPE", parts[3] == "histogram" { families[families.count - 1].histogram = true }
            } else if !families.isEmpty {
                families[families.count - 1].samples.append(line)
            }
        }
        var out = ""
        for family in families.sorted(by: { $0.name < $1.name }) {
            for line in family.comments + (family.histogram ? family.samples : family.samples.sorted()) {
                out += line
                out += "\n"
            }
        }
        return out
    }
}

/// One scrape: reads the server's counters and fills a registry.
private struct Snapshot {
    let server: Server
    let registry: PrometheusCollectorRegistry

    /// Sets gauge `name` (its HELP line `help`) with `labels` to `value`.
    private func gauge(_ name: String, _ help: String, labels: [(String, String)] = [], _ value: Double) {
        registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels).set(value)
    }

    /// Sets counter `name` (its HELP line `help`) with `labels` to `value` (a fresh registry's counters start at 0).
    private func counter(_ name: String, _ help: String, labels: [(String, String)] = [], _ value: UInt64) {
        registry.makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
            .increment(by: Int64(clamping: value))
    }

    func fill() {
        let counters = server.counters
        let served = server.stream
        let now = monotonicNanoseconds()
        gauge("tokenfeed_uptime_seconds", "Seconds since the daemon started serving (Server created).", Double(now - counters.startedAt) / 1e9)
        let ready = counters.readyAt.load(ordering: .relaxed)
        let loadStart = counters.loadStartedAt.load(ordering: .relaxed)
        if ready > 0 {
            gauge("tokenfeed_ready_seconds", "Seconds from the start of loading (curriculum, shard checks) to READY.",
                  Double(ready - (loadStart == 0 ? counters.startedAt : min(loadStart, ready))) / 1e9)
        }
        gauge("tokenfeed_info", "Constant 1, labelled with the served stream's fingerprint and quarantine digest.",
              labels: [("fingerprint", "0x" + Hex.padded(served.fingerprint)), ("quarantine_digest", "0x" + Hex.padded(served.quarantine.digest))], 1)

        // Sessions and connections.
        let open = server.openSessions()
        gauge("tokenfeed_sessions", "Sessions open now (replicas count one each).", Double(open.count))
        gauge("tokenfeed_connections", "Connections open now (sessions, stats-only and handshaking).", Double(server.connectionCount))
        counter("tokenfeed_sessions_opened_total", "Sessions accepted (Welcome sent) since the daemon started.", counters.sessionsOpened.load(ordering: .relaxed))
        counter("tokenfeed_connections_accepted_total", "Connections accepted since the daemon started.", counters.connectionsAccepted.load(ordering: .relaxed))
        for (code, count) in counters.errorCounts() {
            counter("tokenfeed_errors_total", "Error frames sent to clients, by code (docs/PROTOCOL.md, section 7).", labels: [("code", code.name)], count)
        }

        // What this daemon served, per job and rank.
        let tallies = counters.allTallies()
        for tally in tallies {
            let labels = [("job", tally.key.jobID), ("rank", "\(tally.key.rank)")]
            counter("tokenfeed_served_tokens_total", "Tokens this daemon sent (sequence_length per row), per job and rank; each replica counts.",
                    labels: labels, tally.tokens.load(ordering: .relaxed))
            counter("tokenfeed_served_batches_total", "Batch frames this daemon sent, per job and rank; each replica counts.",
                    labels: labels, tally.batches.load(ordering: .relaxed))
        }

        // Ring occupancy and credits of the open sessions (replicas of one rank added up).
        var rings: [RankTally.Key: (slots: Int, ready: Int)] = [:]
        for (_, session) in open {
            let key = RankTally.Key(jobID: session.jobID, rank: session.rank)
            let ring = session.ring
            rings[key, default: (0, 0)].slots += ring.slotCount
            rings[key, default: (0, 0)].ready += ring.publishedCount
        }
        for (key, ring) in rings.sorted(by: { ($0.key.jobID, $0.key.rank) < ($1.key.jobID, $1.key.rank) }) {
            let labels = [("job", key.jobID), ("rank", "\(key.rank)")]
            gauge("tokenfeed_ring_slots", "Batch ring slots of an open session.", labels: labels, Double(ring.slots))
            gauge("tokenfeed_ring_ready_slots", "Ring slots holding a packed batch not yet sent.", labels: labels, Double(ring.ready))
        }

        fillProgress(tallies: tallies)

        // The shared frame cache (preload).
        let cache = server.frameCache
        gauge("tokenfeed_preload_bytes", "Bytes of the shared frame cache (decompressed frames held ahead of need).", Double(cache.residentBytes))
        gauge("tokenfeed_preload_budget_bytes", "The frame cache's byte budget (--preload-bytes).", Double(server.options.preloadBytes))
        let requests = UInt64(max(0, cache.frameRequests.load(ordering: .relaxed)))
        let decompressed = UInt64(max(0, cache.framesDecompressed.load(ordering: .relaxed)))
        counter("tokenfeed_frame_requests_total", "Frames the packers asked the shared cache for.", requests)
        counter("tokenfeed_frames_decompressed_total", "Frames decompressed (cache misses).", decompressed)
        gauge("tokenfeed_frame_cache_hit_ratio", "Share of frame requests served without decompressing (1 - decompressed / requests; 0 before any request).",
              requests == 0 ? 0 : max(0, 1 - Double(decompressed) / Double(requests)))

        // Quarantine.
        let datasets = served.stream.curriculum.datasets
        for d in datasets.indices {
            gauge("tokenfeed_quarantined_shards", "Shards of the dataset left out at startup (--on-corrupt quarantine).",
                  labels: [("dataset", datasets[d].name)], Double(served.quarantine.count(dataset: d)))
        }
    }

    /// Stream position, stage progress, dataset tokens and epochs of the jobs with an open session
    /// (and the most recently served others, up to ``DaemonMetrics/maximumJobsWithProgress`` jobs).
    private func fillProgress(tallies: [RankTally]) {
        let served = server.stream
        let stream = served.stream
        let curriculum = stream.curriculum
        var jobs: [String: (position: UInt64, live: Bool, order: UInt64)] = [:]
        for tally in tallies {
            var job = jobs[tally.key.jobID] ?? (0, false, 0)
            job.position = max(job.position, tally.endSequence.load(ordering: .relaxed))
            job.live = job.live || tally.liveSessions.load(ordering: .relaxed) > 0
            job.order = max(job.order, tally.order)
            jobs[tally.key.jobID] = job
        }
        let chosen = jobs.sorted { ($0.value.live ? 1 : 0, $0.value.order) > ($1.value.live ? 1 : 0, $1.value.order) }
            .prefix(DaemonMetrics.maximumJobsWithProgress).sorted { $0.key < $1.key }
        let length = UInt64(served.sequenceLength)
        for (job, state) in chosen {
            let progress = StreamProgress(stream: stream, position: state.position)
            let jobLabel = ("job", job)
            gauge("tokenfeed_stream_position_sequences", "The job's stream position: one past the furthest global sequence sent to any of its ranks (counts across restarts).",
                  labels: [jobLabel], Double(progress.position))
            gauge("tokenfeed_stream_position_tokens", "The job's stream position in tokens (sequences × sequence_length).",
                  labels: [jobLabel], Double(progress.position * length))
            gauge("tokenfeed_stage_index", "Index of the curriculum stage the job's position is in.", labels: [jobLabel], Double(progress.stage))
            for s in curriculum.stages.indices {
                let stageLabel = ("stage", curriculum.stages[s].name)
                gauge("tokenfeed_stage_progress_ratio", "Fraction of the stage's sequences before the job's position (0 before the stage, 1 after it).",
                      labels: [jobLabel, stageLabel], progress.stageProgress(s))
                for weight in curriculum.stages[s].weights {
                    let d = weight.dataset
                    gauge("tokenfeed_stream_dataset_tokens", "Tokens of the dataset in the stage before the job's position (sequence_length per sequence).",
                          labels: [jobLabel, ("dataset", curriculum.datasets[d].name), stageLabel], Double(progress.countsInStage[s][d] * length))
                }
            }
            for d in curriculum.datasets.indices {
                gauge("tokenfeed_dataset_epoch", "Epoch the dataset's read position is in at the job's position (0: first pass).",
                      labels: [jobLabel, ("dataset", curriculum.datasets[d].name)], Double(progress.epoch(ofDataset: d, stream: stream, sequenceLength: served.sequenceLength)))
            }
        }
    }
}
