import Dispatch
import Logging
import Synchronization
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedShards

/// Opens the served stream at startup under the corrupt-data policy (docs/OPERATIONS.md, "Corrupt
/// data"): with `--verify-shards startup` (implied by `--on-corrupt quarantine`) every frame of every
/// shard is verified first, in parallel over shards, with progress in the log; corrupt shards then
/// stop the daemon (`fail`) or are left out of their dataset (`quarantine`).
enum StartupShardCheck {
    /// The stream to serve and the shards quarantined from it.
    /// - Throws: `ServerStartupError` naming the dataset and folder that cannot be opened; under
    ///   `fail` with verification, every corrupt shard with its file and frame; under `quarantine`,
    ///   a dataset whose every shard is corrupt; the pad token outside the vocabulary.
    ///   - bestFitCacheDirectory: where `bestfit` packing keeps its per-shard row counts between runs
    ///     (docs/PACKING.md); nil keeps them in memory only.
    ///   - nanotronBlendCacheDirectory: where `--order nanotron` keeps its blends' stored counts
    ///     between runs (``NanotronBlendStore``, docs/CURRICULUM.md); nil keeps them in memory only.
    ///   Datasets whose shards name no tokenizer, mixed with datasets that name one, are served with a
    ///   warning in the log naming them (as `tokenfeed plan` prints it).
    static func open(curriculum: Curriculum, policy: CorruptDataPolicy, verification: ShardVerificationMode,
                     bestFitCacheDirectory: String? = nil, nanotronBlendCacheDirectory: String? = nil,
                     logger: Logger) throws(ServerStartupError) -> (GlobalStream, ShardQuarantine) {
        let blendCache = nanotronBlendCacheDirectory.map { directory in
            NanotronBlendStore(directory: directory, report: { line in logger.info("nanotron blend-count cache", metadata: ["detail": "\(line)"]) })
        }
        let opened = try openStream(curriculum: curriculum, policy: policy, verification: verification,
                                    bestFitCacheDirectory: bestFitCacheDirectory, nanotronBlendCache: blendCache, logger: logger)
        warnAboutUnknownTokenizers(opened.0, logger: logger)
        return opened
    }

    /// Logs a warning when datasets of unknown tokenizer are mixed with datasets of a known one.
    static func warnAboutUnknownTokenizers(_ stream: GlobalStream, logger: Logger) {
        let datasets = zip(stream.curriculum.datasets, stream.datasets).map { (name: $0.name, folder: $1) }
        let unknown = GlobalStream.unknownTokenizers(datasets: datasets)
        guard !unknown.isEmpty else { return }
        logger.warning("the tokenizer of some datasets is unknown (their shards name none); check that it is the others'", metadata: [
            "curriculum": "\(stream.curriculum.sourcePath)", "unknown": "\(unknown.joined(separator: ","))",
            "tokenizer": "\(datasets.compactMap(\.folder.tokenizer).first ?? "")",
        ])
    }

    private static func openStream(curriculum: Curriculum, policy: CorruptDataPolicy, verification: ShardVerificationMode,
                                   bestFitCacheDirectory: String?, nanotronBlendCache: NanotronBlendStore?,
                                   logger: Logger) throws(ServerStartupError) -> (GlobalStream, ShardQuarantine) {
        let source = curriculum.sourcePath
        let report: @Sendable (String) -> Void = { line in logger.warning("bestfit row-count cache", metadata: ["detail": "\(line)"]) }
        let manifestReport: @Sendable (String) -> Void = { line in logger.warning("dataset manifest", metadata: ["detail": "\(line)"]) }
        guard policy == .quarantine || verification == .startup else {
            do {
                return (try GlobalStream(curriculum: curriculum, bestFitCacheDirectory: bestFitCacheDirectory, bestFitCacheReport: report,
                                         manifestReport: manifestReport, nanotronBlendCache: nanotronBlendCache), .none)
            } catch { throw ServerStartupError(.data, "\(source): \(error)") }
        }
        // Every shard of every dataset, in curriculum and file-name order.
        var shards: [(dataset: Int, path: String)] = []
        for (d, spec) in curriculum.datasets.enumerated() {
            guard let folder = spec.folder else { throw ServerStartupError(.data, "\(source): dataset \(spec.name): no folder (give a data root)") }
            do {
                for path in try DatasetFolder.shardPaths(in: folder) { shards.append((d, path)) }
            } catch {
                throw ServerStartupError(.data, "\(source): dataset \(spec.name): \(error)")
            }
        }
        let problems = verify(shards.map(\.path), logger: logger)
        var quarantined: [ShardQuarantine.Entry] = []
        var bad: [ShardError] = []
        for (i, shard) in shards.enumerated() {
            guard let problem = problems[i] else { continue }
            bad.append(problem)
            let spec = curriculum.datasets[shard.dataset]
            quarantined.append(.init(dataset: shard.dataset,
                                     path: GlobalStream.provenancePath(of: shard.path, folder: spec.folder!, datasetName: spec.name, dataRoot: curriculum.dataRoot),
                                     problem: problem.description))
        }
        if policy == .fail, !bad.isEmpty {
            throw ServerStartupError(.corruptData, "\(bad.count) corrupt shard\(bad.count == 1 ? "" : "s") (--on-corrupt fail; --on-corrupt quarantine would serve without them):\n"
                                     + bad.map { "  \($0)" }.joined(separator: "\n"))
        }
        let quarantine = ShardQuarantine(entries: quarantined)
        for entry in quarantine.entries {
            logger.warning("shard quarantined", metadata: ["dataset": "\(curriculum.datasets[entry.dataset].name)", "shard": "\(entry.path)",
                                                           "problem": "\(entry.problem)"])
        }
        // The remaining shards, reopened (verification opened and closed them).
        var folders: [DatasetFolder] = []
        for (d, spec) in curriculum.datasets.enumerated() {
            let good = shards.indices.filter { shards[$0].dataset == d && problems[$0] == nil }.map { shards[$0].path }
            guard !good.isEmpty else {
                throw ServerStartupError(.corruptData, "\(source): dataset \(spec.name): every shard of \(spec.folder!) is corrupt (all \(quarantine.count(dataset: d)) quarantined); "
                                         + "nothing is left to serve from it")
            }
            do {
                folders.append(try DatasetFolder(path: spec.folder!, shards: good.map { path throws(ShardError) in try ShardReader(path: path) }))
            } catch {
                throw ServerStartupError(.data, "\(source): dataset \(spec.name): \(error)")
            }
        }
        do {
            return (try GlobalStream(curriculum: curriculum, datasets: folders, bestFitCacheDirectory: bestFitCacheDirectory,
                                     bestFitCacheReport: report, nanotronBlendCache: nanotronBlendCache), quarantine)
        } catch {
            throw ServerStartupError(.data, "\(source): \(error)")
        }
    }

    /// Verifies every shard completely, in parallel, logging progress about every tenth of them. Under
    /// systemd the start timeout is extended by 30 s (`EXTEND_TIMEOUT_USEC`) every 5 s while it runs,
    /// with the progress as `STATUS=`.
    /// - Returns: per shard, its first problem, or nil when it is good.
    static func verify(_ paths: [String], logger: Logger) -> [ShardError?] {
        logger.info("verifying every frame of every shard", metadata: ["shards": "\(paths.count)"])
        let started = monotonicNanoseconds()
        let results = ParallelResults<ShardError?>(count: paths.count)
        let progress = VerificationProgress()
        SystemdNotifier.notify("EXTEND_TIMEOUT_USEC=30000000\nSTATUS=verifying shards: 0 of \(paths.count)")
        progress.extended.store(monotonicNanoseconds(), ordering: .relaxed)
        DispatchQueue.concurrentPerform(iterations: paths.count) { i in
            let problem = ShardVerifier.verify(path: paths[i]).first
            results.set(i, problem)
            if problem != nil { progress.bad.add(1, ordering: .relaxed) }
            let done = progress.done.add(1, ordering: .relaxed).newValue
            let now = monotonicNanoseconds(), last = progress.extended.load(ordering: .relaxed)
            if now - last > 5_000_000_000, progress.extended.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged {
                SystemdNotifier.notify("EXTEND_TIMEOUT_USEC=30000000\nSTATUS=verifying shards: \(done) of \(paths.count)")
            }
            if done * 10 / paths.count != (done - 1) * 10 / paths.count || done == paths.count {
                logger.info("verifying shards", metadata: ["verified": "\(done)/\(paths.count)", "bad": "\(progress.bad.load(ordering: .relaxed))"])
            }
        }
        let problems = results.values
        logger.info("shards verified", metadata: [
            "shards": "\(paths.count)", "bad": "\(problems.reduce(0) { $0 + ($1 == nil ? 0 : 1) })",
            "seconds": "\(Double((monotonicNanoseconds() - started) / 1_000_000) / 1000)",
        ])
        return problems
    }
}

/// Counters the parallel verification updates.
private final class VerificationProgress: Sendable {
    let done = Atomic<Int>(0)
    let bad = Atomic<Int>(0)
    /// When systemd's start timeout was last extended (monotonic nanoseconds).
    let extended = Atomic<UInt64>(0)
}
