import Dispatch
import TokenfeedCurriculum
import TokenfeedMixing
import TokenfeedShards

/// The global stream of sequences: a pure function of (curriculum, shards, seed, position).
///
/// Global sequence `i` comes from the dataset ``StreamPlan`` picks for it, and is that dataset's
/// `k`-th row, `k` being how many earlier sequences came from the same dataset (over all stages) —
/// or, when the curriculum shuffles, row `RowShuffle.rowIndex(k)`, a seeded bijection within blocks:
/// - with `concat` packing, the `k`-th window of `sequenceLength + 1` tokens of the dataset's
///   stream: tokens `[k·L, k·L + L + 1)`, consecutive windows overlapping by one token, as
///   Megatron reads them (not nanotron, whose windows do not overlap: docs/PACKING.md);
/// - with `bestfit` packing, the `k`-th row of the dataset's documents packed best fit decreasing,
///   `lookahead` documents at a time, then padded with the pad id (``BestFitDatasetRows``,
///   docs/PACKING.md).
///
/// With `--order nanotron` (``Curriculum/order``) the dataset and its sample come from
/// ``NanotronOrder`` instead (nanotron's blend and stage carry-over), and sample `k` is a window of
/// `sequenceLength + 1` tokens inside one shard file (``NanotronWindows``): nanotron's samples.
///
/// Opening reads shard metadata only.
public final class GlobalStream: Sendable {
    public let curriculum: Curriculum
    public let plan: StreamPlan
    /// The curriculum's datasets, opened, in curriculum order.
    public let datasets: [DatasetFolder]
    /// Width of the served tokens: the widest of the datasets'.
    public let tokenWidth: TokenWidth
    /// The largest vocabulary size the datasets' shards declare.
    public let vocabularySize: UInt32
    /// Bestfit row counts per shard, shared by the planners (unused with `concat` packing).
    let bestFitRows: BestFitRowCache
    /// With `--order nanotron` (``Curriculum/order``): nanotron's blend and stage carry-over, and
    /// each dataset's windows; nil in the quota order.
    public let nanotronOrder: NanotronOrder?
    /// Per dataset, its windows (empty in the quota order).
    public let nanotronWindows: [NanotronWindows]

    public var sequenceLength: Int { curriculum.sequenceLength }
    /// Tokens in a served row: `sequenceLength + 1`.
    public var rowTokens: Int { curriculum.sequenceLength + 1 }

    /// Opens every dataset folder of the curriculum (their paths must be resolved: load the
    /// curriculum with a data root).
    /// - Throws: `EngineError` naming the dataset and folder that cannot be opened, or the pad
    ///   token when it is outside the datasets' vocabulary (so it also fits their token width).
    /// - Parameters:
    ///   - bestFitCacheDirectory: with `bestfit` packing, where per-shard row counts persist
    ///     (``BestFitRowStore``, docs/PACKING.md): read before counting, written after. Nil keeps them in
    ///     memory only. A daemon passes a folder of its state directory (`<state-dir>/bestfit-rows`).
    ///   - bestFitCacheReport: receives one line for each cache file ignored (corrupt, another row
    ///     length or look-ahead, changed shards) or written; for a log.
    ///   - manifestReport: receives one line for each dataset manifest found missing, stale or
    ///     corrupt (``DatasetFolder/open(path:report:)``); nil prints them on standard error.
    ///   - nanotronBlendCache: with `--order nanotron`, where the stages' blend counts persist
    ///     (``NanotronBlendStore``, docs/CURRICULUM.md "Orders"); nil keeps them in memory only. A
    ///     daemon passes one on a folder of its state directory (`<state-dir>/nanotron-blend`).
    public convenience init(curriculum: Curriculum, plan: StreamPlan? = nil, bestFitCacheDirectory: String? = nil,
                            bestFitCacheReport: (@Sendable (String) -> Void)? = nil,
                            manifestReport: (@Sendable (String) -> Void)? = nil,
                            nanotronBlendCache: (any NanotronBlendCountCache)? = nil) throws(EngineError) {
        var folders: [String] = []
        for spec in curriculum.datasets {
            guard let folder = spec.folder else {
                throw EngineError("dataset \(spec.name): no folder (give a data root)")
            }
            folders.append(folder)
        }
        // The datasets open in parallel (each opens its shards in parallel too): listing, reading
        // and decoding one manifest is a single thread's work per dataset.
        let opened = ParallelResults<Result<DatasetFolder, ShardError>>(count: folders.count)
        let paths = folders
        DispatchQueue.concurrentPerform(iterations: paths.count) { d in
            opened.set(d, Result { () throws(ShardError) in try DatasetFolder.open(path: paths[d], report: manifestReport) })
        }
        var datasets: [DatasetFolder] = []
        for (spec, result) in zip(curriculum.datasets, opened.values) {
            do { datasets.append(try result.get()) } catch {
                throw EngineError("dataset \(spec.name): \(error)")
            }
        }
        StartupMemory.releaseFreedMemory()
        try self.init(curriculum: curriculum, datasets: datasets, plan: plan, bestFitCacheDirectory: bestFitCacheDirectory,
                      bestFitCacheReport: bestFitCacheReport, nanotronBlendCache: nanotronBlendCache)
    }

    /// The stream over dataset folders the caller has opened, one per curriculum dataset in
    /// curriculum order — for instance folders without the shards a daemon quarantined
    /// (`DatasetFolder(path:shards:)`). The stream is the same pure function of its inputs, over
    /// these folders' shards.
    /// - Precondition: `datasets.count == curriculum.datasets.count`.
    /// - Throws: `EngineError` naming a dataset that holds no token (``checkServable(dataset:folder:)``),
    ///   two datasets of different tokenizers (``checkTokenizers(datasets:)``), shards unlike what the
    ///   curriculum declares (``checkDeclaredFormats(curriculum:datasets:)``), or the pad token when it is outside the datasets' vocabulary.
    /// - Parameters: `bestFitCacheDirectory`, `bestFitCacheReport`, `nanotronBlendCache`: as for
    ///   ``init(curriculum:plan:bestFitCacheDirectory:bestFitCacheReport:manifestReport:nanotronBlendCache:)``.
    public init(curriculum: Curriculum, datasets: [DatasetFolder], plan: StreamPlan? = nil, bestFitCacheDirectory: String? = nil,
                bestFitCacheReport: (@Sendable (String) -> Void)? = nil,
                nanotronBlendCache: (any NanotronBlendCountCache)? = nil) throws(EngineError) {
        precondition(datasets.count == curriculum.datasets.count, "one dataset folder per curriculum dataset")
        for (spec, folder) in zip(curriculum.datasets, datasets) {
            try Self.checkServable(dataset: spec.name, folder: folder)
        }
        try Self.checkTokenizers(datasets: zip(curriculum.datasets, datasets).map { ($0.name, $1) })
        try Self.checkDeclaredFormats(curriculum: curriculum, datasets: datasets)
        let tokenWidth: TokenWidth = datasets.contains { $0.tokenWidth == .uint32 } ? .uint32 : .uint16
        let vocabularySize = datasets.map(\.vocabularySize).max() ?? 0
        if case .bestfit(let pad, _) = curriculum.packing {
            if pad >= vocabularySize {
                throw EngineError("\(curriculum.sourcePath): packing: pad_token \(pad) is outside the datasets' vocabulary of \(vocabularySize) ids")
            }
        }
        self.curriculum = curriculum
        self.plan = plan ?? StreamPlan(curriculum: curriculum)
        self.datasets = datasets
        self.tokenWidth = tokenWidth
        self.vocabularySize = vocabularySize
        var lookahead = 1
        if case .bestfit(_, let groupDocuments) = curriculum.packing { lookahead = groupDocuments }
        self.bestFitRows = BestFitRowCache(
            folders: datasets, rowTokens: curriculum.sequenceLength + 1, lookahead: lookahead,
            store: bestFitCacheDirectory.map { BestFitRowStore(directory: $0, rowTokens: curriculum.sequenceLength + 1, lookahead: lookahead) },
            report: bestFitCacheReport ?? { _ in })
        if curriculum.order == .nanotron {
            let order = try Self.nanotronOrder(curriculum: curriculum, countCache: nanotronBlendCache)
            let windows = datasets.map { NanotronWindows(folder: $0, rowTokens: curriculum.sequenceLength + 1) }
            try Self.checkNanotronWindows(curriculum: curriculum, order: order, windows: windows, datasets: datasets)
            nanotronOrder = order
            nanotronWindows = windows
        } else {
            nanotronOrder = nil
            nanotronWindows = []
        }
    }

    /// nanotron's order of `curriculum` (computing its stages' blends: see ``NanotronOrder``; with
    /// `countCache`, reading their stored counts from it and writing back those computed).
    /// - Throws: `EngineError` when the curriculum packs or shuffles (nanotron's samples are plain
    ///   windows: `packing: concat`, no `shuffle`).
    public static func nanotronOrder(curriculum: Curriculum, countCache: (any NanotronBlendCountCache)? = nil) throws(EngineError) -> NanotronOrder {
        guard curriculum.packing == .concat else {
            throw EngineError("\(curriculum.sourcePath): --order nanotron reads nanotron's windows of sequence_length + 1 tokens; it cannot be combined with bestfit packing (use packing: concat, or --order quota)")
        }
        guard curriculum.shuffle == .off else {
            throw EngineError("\(curriculum.sourcePath): --order nanotron reads each dataset's windows in file order, as nanotron does; it cannot be combined with shuffle (remove it, or use --order quota)")
        }
        return NanotronOrder(curriculum: curriculum, countCache: countCache)
    }

    /// Checks that every dataset holds the windows nanotron's order reads from it: nanotron has no
    /// epochs (its `BlendableDataset` asserts enough samples), so a dataset read past its last window
    /// is an error here, before anything is served.
    /// - Throws: `EngineError` naming the dataset, its folder, the windows needed and held, and the
    ///   stage that reads past the end.
    public static func checkNanotronWindows(curriculum: Curriculum, order: NanotronOrder, windows: [NanotronWindows],
                                            datasets: [DatasetFolder]) throws(EngineError) {
        let needed = order.samplesNeeded
        for d in curriculum.datasets.indices where needed[d] > windows[d].count {
            let stage = (0 ..< order.stageCount).first { order.carry[$0][d] + order.drawn[$0][d] > windows[d].count } ?? 0
            throw EngineError("dataset \(curriculum.datasets[d].name) (\(datasets[d].path)): --order nanotron reads \(needed[d]) windows of "
                              + "\(curriculum.sequenceLength + 1) tokens from it, but its \(datasets[d].shards.count) shard file(s) hold "
                              + "\(windows[d].count); stage \(stage + 1) ('\(curriculum.stages[stage].name)') reads past the end. nanotron "
                              + "has no epochs: add data to the dataset, lower its weight, or use --order quota")
        }
    }

    /// Checks that a dataset folder can be served: it must hold at least one token (a dataset of
    /// empty shards has no sequence to give, at any position). The daemon at start-up, `dump` and
    /// `plan` all refuse such a dataset through this check.
    /// - Throws: `EngineError` naming the dataset and its folder.
    public static func checkServable(dataset name: String, folder: DatasetFolder) throws(EngineError) {
        guard folder.tokenCount > 0 else {
            let shards = folder.shards.count == 1 ? "its only shard holds" : "its \(folder.shards.count) shards hold"
            throw EngineError("dataset \(name): \(folder.path): \(shards) 0 tokens, so there is nothing to serve from it; "
                              + "add tokenized shards to the folder or remove the dataset from the curriculum")
        }
    }

    /// Checks that the curriculum's datasets come from one tokenizer: two datasets whose shards name
    /// different tokenizers are refused, wherever they are in the curriculum (every stage of a run
    /// feeds one model). A dataset whose tokenizer is unknown (version 1 shards, imports that did not
    /// say) mixes with any: ``unknownTokenizers(datasets:)`` lists them for a warning.
    /// - Throws: `EngineError` naming both datasets and both tokenizers.
    public static func checkTokenizers(datasets: [(name: String, folder: DatasetFolder)]) throws(EngineError) {
        var first: (name: String, folder: DatasetFolder)?
        for dataset in datasets {
            guard let tokenizer = dataset.folder.tokenizer else { continue }
            if let first, let known = first.folder.tokenizer, known != tokenizer {
                throw EngineError("datasets \(first.name) (\(first.folder.path)) and \(dataset.name) (\(dataset.folder.path)) come from "
                                  + "different tokenizers, \"\(known)\" and \"\(tokenizer)\": their ids mean different tokens; "
                                  + "re-tokenize one of them or serve them to different runs")
            }
            if first == nil { first = dataset }
        }
    }

    /// Checks the datasets of every stage against what the stage's file declares about their shards
    /// (a nanotron config's `token_size_in_bytes`, `tokenizer_name`, `vocab_size`): the same token
    /// width, the same tokenizer where the shards name one, no more ids than the vocabulary.
    /// - Throws: `EngineError` starting `file:line:col: error:` at the declaration, naming the dataset.
    public static func checkDeclaredFormats(curriculum: Curriculum, datasets: [DatasetFolder]) throws(EngineError) {
        for stage in curriculum.stages {
            let declared = stage.declaredFormat
            for weight in stage.weights {
                let folder = datasets[weight.dataset], name = curriculum.datasets[weight.dataset].name
                if let bytes = declared.tokenBytes, bytes.value != folder.tokenWidth.bytes {
                    throw EngineError("\(bytes.location): error: token_size_in_bytes is \(bytes.value), but the shards of dataset '\(name)' (\(folder.path)) hold \(folder.tokenWidth.bytes)-byte tokens; fix the config or re-import the data")
                }
                if let tokenizer = declared.tokenizer, let actual = folder.tokenizer, actual != tokenizer.value {
                    throw EngineError("\(tokenizer.location): error: tokenizer_name is \"\(tokenizer.value)\", but the shards of dataset '\(name)' (\(folder.path)) were tokenized with \"\(actual)\"; their ids mean other tokens")
                }
                if let vocabulary = declared.vocabularySize, UInt64(folder.vocabularySize) > vocabulary.value {
                    throw EngineError("\(vocabulary.location): error: vocab_size is \(vocabulary.value), but the shards of dataset '\(name)' (\(folder.path)) declare \(folder.vocabularySize) ids; the model would see ids past its vocabulary")
                }
            }
        }
    }

    /// The datasets whose tokenizer is unknown while another dataset's is known (allowed; worth a warning).
    public static func unknownTokenizers(datasets: [(name: String, folder: DatasetFolder)]) -> [String] {
        guard datasets.contains(where: { $0.folder.tokenizer != nil }) else { return [] }
        return datasets.filter { $0.folder.tokenizer == nil }.map(\.name)
    }

    /// The pad id of `bestfit` packing; nil with `concat` packing.
    public var padToken: UInt32? {
        if case .bestfit(let pad, _) = curriculum.packing { return pad }
        return nil
    }

    /// With `bestfit` packing, counts the rows of every shard of every dataset now — reading the
    /// cache directory first, counting what is missing in one pass on all cores, writing the cache —
    /// so that no planner waits for counts later. A planner does this by itself on its first far
    /// jump; call it to pay the cost up front (e.g. before serving a resumed run). No-op with `concat`.
    /// - Throws: `ShardError` when a shard's index pages cannot be read or are corrupt.
    public func countBestFitRows() throws(ShardError) {
        if padToken != nil { try bestFitRows.countAll() }
    }

    /// Where the bestfit row counts came from so far: the cache directory or counting.
    public var bestFitCountStatistics: BestFitCountStatistics { bestFitRows.statistics }

    /// A planner for one consumer (it caches epoch layouts, so each thread has its own).
    public func planner() -> SequencePlanner { SequencePlanner(stream: self) }

    /// The path of a shard for provenance: relative to the curriculum's data root when the dataset
    /// folder is inside it (`fineweb-edu/00003.zst`, `openmathreasoning-4k/tokenized/00000.zst`),
    /// else `<dataset name>/<shard file name>`.
    public func shardName(dataset: Int, shard: Int) -> String {
        Self.provenancePath(of: datasets[dataset].shards[shard].path, folder: datasets[dataset].path,
                            datasetName: curriculum.datasets[dataset].name, dataRoot: curriculum.dataRoot)
    }

    /// The provenance path of the shard file at `path` in dataset folder `folder`: relative to
    /// `dataRoot` when the folder is inside it, else `<dataset name>/<file name>`. Paths are compared
    /// as component lists, so `root/`, `root//x` and `./` spellings agree.
    public static func provenancePath(of path: String, folder: String, datasetName: String, dataRoot: String?) -> String {
        let file = components(path).last.map(String.init) ?? ""
        return provenancePrefix(folder: folder, datasetName: datasetName, dataRoot: dataRoot) + "/" + file
    }

    /// What the provenance paths of dataset folder `folder`'s shards start with (before `/<file
    /// name>`): the folder relative to `dataRoot` when inside it, else `datasetName`. The same for
    /// every shard of the folder: computed once a dataset, not once a shard (splitting the three
    /// paths for each of 72,000 shards was most of a daemon's start-up).
    public static func provenancePrefix(folder: String, datasetName: String, dataRoot: String?) -> String {
        let folder = components(folder)
        if let root = dataRoot.map(components), folder.count > root.count, Array(folder.prefix(root.count)) == root {
            return folder.dropFirst(root.count).joined(separator: "/")
        }
        return datasetName
    }

    /// The provenance paths of every shard of dataset `d`, in file-name order (``shardName(dataset:shard:)``
    /// of each, with the prefix computed once).
    public func shardNames(dataset d: Int) -> [String] {
        let prefix = Self.provenancePrefix(folder: datasets[d].path, datasetName: curriculum.datasets[d].name, dataRoot: curriculum.dataRoot)
        return datasets[d].shards.map { prefix + "/" + $0.fileName }
    }

    /// `path`'s components, without empty and `.` ones.
    private static func components(_ path: String) -> [Substring] { path.split(separator: "/").filter { $0 != "." } }
}

/// A problem opening or serving the stream, in words that name what is wrong.
public struct EngineError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Computes where sequences' tokens come from. Metadata only; one per thread.
public struct SequencePlanner: Sendable {
    public let stream: GlobalStream
    private var datasetStreams: [DatasetStream]
    /// Per dataset, its bestfit rows (empty with `concat` packing).
    private var bestFitRows: [BestFitDatasetRows]
    /// The row order within blocks, when the curriculum shuffles; per dataset, its key.
    private let shuffle: RowShuffle?
    private let shuffleKeys: [UInt64]
    /// `--order nanotron`: the order (this planner's copy: it caches blend counts), where it was
    /// last, and a document locator per dataset.
    private var nanotron: NanotronOrder?
    private var nanotronWalker = NanotronWalker()
    private var nanotronLocators: [DocumentLocator]

    init(stream: GlobalStream) {
        self.stream = stream
        self.datasetStreams = zip(stream.curriculum.datasets, stream.datasets).map {
            DatasetStream(name: $0.identity, folder: $1, seed: stream.curriculum.seed)
        }
        if case .bestfit(_, let lookahead) = stream.curriculum.packing {
            self.bestFitRows = zip(stream.curriculum.datasets, stream.datasets).enumerated().map { d, pair in
                BestFitDatasetRows(dataset: d, name: pair.0.identity, folder: pair.1, seed: stream.curriculum.seed,
                                   rowTokens: stream.rowTokens, lookahead: lookahead, cache: stream.bestFitRows)
            }
        } else {
            self.bestFitRows = []
        }
        if case .rows(let span) = stream.curriculum.shuffle {
            shuffle = RowShuffle(span: span, seed: stream.curriculum.seed)
            shuffleKeys = stream.curriculum.datasets.map { RowShuffle.datasetKey(identity: $0.identity) }
        } else {
            shuffle = nil
            shuffleKeys = []
        }
        nanotron = stream.nanotronOrder
        nanotronLocators = stream.nanotronOrder == nil ? [] : stream.datasets.map { _ in DocumentLocator() }
    }

    /// Appends the pieces of global sequence `i` to `pieces` and returns its record (with
    /// `firstPiece` = the index of its first piece in `pieces`). The pieces, read from their shards
    /// in order, give the row's tokens; with `bestfit` packing `paddedTokens` pad ids follow them.
    /// - Throws: `ShardError` when an index page the plan needs cannot be read or is corrupt.
    public mutating func plan(sequence i: UInt64, step: UInt64, appendingTo pieces: inout [SequencePiece]) throws(ShardError) -> SequenceRecord {
        if let source = nanotron?.source(ofSequence: i, walker: &nanotronWalker) {
            return try planNanotron(sequence: i, step: step, source: source, appendingTo: &pieces)
        }
        let source = stream.plan.source(ofSequence: i)
        let row = shuffle.map { $0.rowIndex(source.ordinal, datasetKey: shuffleKeys[source.dataset]) } ?? source.ordinal
        let first = pieces.count
        var epoch: UInt64 = 0
        var padded = 0
        if bestFitRows.isEmpty {
            let length = UInt64(stream.sequenceLength)
            var position = row * length
            var remaining = length + 1
            while remaining > 0 {
                let at = try datasetStreams[source.dataset].locate(position)
                if pieces.count == first { epoch = at.epoch }
                let n = min(remaining, at.remainingInDocument)
                pieces.append(SequencePiece(shard: UInt32(at.shard), document: UInt64(at.document),
                                            offset: at.offset, length: UInt32(n)))
                position += n
                remaining -= n
            }
        } else {
            (epoch, padded) = try bestFitRows[source.dataset].row(row, appendingTo: &pieces)
        }
        return SequenceRecord(sequence: i, step: step, stage: UInt32(source.stage), dataset: UInt32(source.dataset),
                              firstPiece: UInt32(first), pieceCount: UInt32(pieces.count - first),
                              paddedTokens: UInt32(padded), epoch: UInt32(truncatingIfNeeded: epoch))
    }

    /// `--order nanotron`: the pieces of the window `source.ordinal` of the source's dataset — one
    /// shard file, `L + 1` tokens, split at its documents.
    private mutating func planNanotron(sequence i: UInt64, step: UInt64, source: SequenceSource,
                                       appendingTo pieces: inout [SequencePiece]) throws(ShardError) -> SequenceRecord {
        let first = pieces.count
        let (shard, start) = stream.nanotronWindows[source.dataset].locate(source.ordinal)
        let reader = stream.datasets[source.dataset].shards[shard]
        var offset = start
        var remaining = UInt64(stream.rowTokens)
        while remaining > 0 {
            let (document, end) = try nanotronLocators[source.dataset].document(containingToken: offset, in: reader)
            let n = min(remaining, end - offset)
            pieces.append(SequencePiece(shard: UInt32(shard), document: UInt64(document), offset: offset, length: UInt32(n)))
            offset += n
            remaining -= n
        }
        return SequenceRecord(sequence: i, step: step, stage: UInt32(source.stage), dataset: UInt32(source.dataset),
                              firstPiece: UInt32(first), pieceCount: UInt32(pieces.count - first), paddedTokens: 0, epoch: 0)
    }
}
