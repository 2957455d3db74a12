/// A training curriculum: which datasets, in which proportions, over which ranges of tokens.
///
/// Produced by ``CurriculumLoader/load(path:dataRoot:)`` from any of the three input forms
/// (tokenfeed's own format, a nanotron config, a dataset list); see docs/CURRICULUM.md.
/// Counting follows nanotron: a sequence counts as `sequenceLength` tokens consumed (although
/// it reads `sequenceLength + 1` tokens of its dataset), so global sequence `i` starts at token
/// `i × sequenceLength`, and a stage that starts at token `T` begins with the first sequence `i`
/// for which `i × sequenceLength ≥ T`.
public struct Curriculum: Sendable, Hashable {
    /// The file the curriculum was loaded from.
    public var sourcePath: String
    /// Which input form the file was written in.
    public var format: CurriculumFormat
    /// Tokens per sequence (a sequence reads `sequenceLength + 1` tokens of its dataset).
    public var sequenceLength: Int
    /// The seed for everything random-looking but deterministic (tie-breaks, epoch orders).
    public var seed: UInt64
    /// Every dataset of every stage, each once, in order of first appearance.
    public var datasets: [DatasetSpec]
    /// The stages: contiguous, the first starts at token 0, each at least one sequence long.
    public var stages: [Stage]
    /// How documents are packed into sequences.
    public var packing: PackingSpec

    public init(sourcePath: String, format: CurriculumFormat, sequenceLength: Int, seed: UInt64,
                datasets: [DatasetSpec], stages: [Stage], packing: PackingSpec) {
        precondition(sequenceLength > 0, "sequence length must be positive")
        precondition(!stages.isEmpty, "a curriculum has at least one stage")
        self.sourcePath = sourcePath
        self.format = format
        self.sequenceLength = sequenceLength
        self.seed = seed
        self.datasets = datasets
        self.stages = stages
        self.packing = packing
    }

    /// The folder dataset folders were resolved against, when one was given. Provenance names
    /// shards by their path relative to it. Not part of the fingerprint.
    public var dataRoot: String?
    /// Whether each dataset's rows are served in a seeded order (tokenfeed format `shuffle:`; off
    /// for nanotron configs and dataset lists). Part of the fingerprint when on.
    public var shuffle: ShuffleSpec = .off
    /// The order sequences are drawn in (`--order`; default ``StreamOrder/quota``). Set by the
    /// command line or the daemon's config file after loading, not by the curriculum file. Part of
    /// the fingerprint when it is ``StreamOrder/nanotron``.
    public var order: StreamOrder = .quota
    /// A nanotron config's `parallelism.dp`, `tokens.micro_batch_size` and
    /// `tokens.batch_accumulation_per_replica`; nil for the other forms. For reports (`plan` says
    /// which batch shape reproduces nanotron's rank slice); not part of the fingerprint.
    public var nanotronBatch: NanotronBatch?
    /// What is allowed but probably not meant (two identities reading the same files), found
    /// while loading; `plan` prints them. Not part of the fingerprint.
    public var warnings: [CurriculumWarning] = []
    /// A 128-bit hex digest of everything that shapes the stream (sequence length, seed,
    /// packing, dataset identities, stage boundaries and exact weights) — not of folders, of
    /// datasets' display names or of stages' names, which do not change which tokens are served.
    /// Computed from the current values.
    public var fingerprint: String {
        CurriculumFingerprint.digest(sequenceLength: sequenceLength, seed: seed, packing: packing, shuffle: shuffle,
                                     order: order, datasets: datasets, stages: stages)
    }

    /// The token at which the last stage ends (exclusive).
    public var endToken: UInt64 { stages[stages.count - 1].endToken }

    /// The largest common denominator of one stage's weights that tokenfeed accepts: the mixer
    /// keeps one period of the stage's schedule (this many sequences) in memory.
    public static let maximumWeightDenominator: UInt64 = 1 << 24
}

/// The input form a curriculum file was written in.
public enum CurriculumFormat: String, Sendable, Hashable {
    /// tokenfeed's own format (top-level `stages:`).
    case tokenfeed
    /// A nanotron training config (top-level `data_stages:`).
    case nanotron
    /// A plain dataset list (top-level `datasets: [{name, config, weight}]`), one stage.
    case datasetList = "dataset-list"
}

/// A dataset the curriculum draws from: one identity, whose read position carries over from
/// stage to stage wherever its bytes are on this machine.
///
/// The identity of a nanotron dataset is its `dataset_folder` (the S3 path), as nanotron keys it;
/// the `dataset_read_path` only says where the bytes are here, and may change between stages
/// (SmolLM3's `stack-edu-HTML` is read from `…/stack-v2-HTML` in stages 1–2 and `…/stack-edu-HTML`
/// in stage 3). In tokenfeed's own format the identity is the name, or the `identity:` a
/// `datasets:` entry gives (docs/CURRICULUM.md, "Dataset identity").
public struct DatasetSpec: Sendable, Hashable {
    /// The dataset's name, unique within the curriculum: for people and reports (a nanotron
    /// dataset's is the shortest distinct suffix of its identity, so it may change from one stage
    /// file to the next; nothing that decides the stream depends on it).
    public var name: String
    /// The full identity, unique within the curriculum: a nanotron `dataset_folder` (without
    /// trailing slashes), the `identity:` of a tokenfeed `datasets:` entry, else the name. It is
    /// what the stream depends on (fingerprint, stream description, epoch orders).
    public var identity: String
    /// The folder its shards are read from, resolved; nil when it cannot be resolved on this machine
    /// (a nanotron `s3://` read path without `--data-root`). When the curriculum names several
    /// folders for the identity, the first that exists (all that exist hold the same files).
    public var folder: String?
    /// Every local folder the curriculum names for this identity, in order of first use.
    public var folders: [DatasetFolderUse]
    /// Where the dataset is first named in the curriculum.
    public var location: SourceLocation

    public init(name: String, identity: String? = nil, folder: String?, folders: [DatasetFolderUse]? = nil,
                location: SourceLocation) {
        self.name = name
        self.identity = identity ?? name
        self.folder = folder
        self.folders = folders ?? [DatasetFolderUse(path: folder, written: folder ?? name, stages: [])]
        self.location = location
    }
}

/// One local folder a curriculum names for a dataset identity, and the stages that name it.
public struct DatasetFolderUse: Sendable, Hashable {
    /// The folder, resolved; nil when it cannot be resolved on this machine.
    public var path: String?
    /// The folder as written (a read path, a folder relative to the data root).
    public var written: String
    /// The stages (indices into ``Curriculum/stages``) that name this folder.
    public var stages: [Int]

    public init(path: String?, written: String, stages: [Int]) {
        self.path = path
        self.written = written
        self.stages = stages
    }
}

/// One stage: a token range and the mixture served in it.
public struct Stage: Sendable, Hashable {
    /// The stage's name, for people.
    public var name: String
    /// The first token of the stage (inclusive).
    public var startToken: UInt64
    /// The end of the stage (exclusive).
    public var endToken: UInt64
    /// The mixture, one entry per dataset of the stage, in the order the file lists them.
    public var weights: [StageWeight]
    /// Where the stage is written in the file.
    public var location: SourceLocation
    /// What the stage's file says its datasets' shards hold (nanotron's `token_size_in_bytes`,
    /// `tokenizer_name`, `vocab_size`), checked when the stream is opened.
    public var declaredFormat = DeclaredShardFormat()

    public init(name: String, startToken: UInt64, endToken: UInt64, weights: [StageWeight], location: SourceLocation) {
        precondition(startToken < endToken, "a stage ends after it starts")
        self.name = name
        self.startToken = startToken
        self.endToken = endToken
        self.weights = weights
        self.location = location
    }

    /// The sum of the stage's integer weight units: the common denominator of its shares.
    public var totalUnits: UInt64 { weights.reduce(0) { $0 + $1.units } }
}

/// One dataset's weight in a stage, exactly and as a share.
///
/// The weights written in a file are exact decimals; tokenfeed scales a stage's weights to the
/// smallest integers with the same ratios (`units`), so the normalised share of a dataset is
/// exactly `units / stage.totalUnits`, the same on every machine.
public struct StageWeight: Sendable, Hashable {
    /// Index of the dataset in ``Curriculum/datasets``.
    public var dataset: Int
    /// The normalised weight (shares of a stage sum to 1), for display and reports.
    public var share: Double
    /// The exact weight in integer units (zero for a dataset listed with weight 0).
    public var units: UInt64
    /// The weight as written, rounded to the nearest float64 (what nanotron's blend computes with).
    public var written: Double = 0

    public init(dataset: Int, share: Double, units: UInt64) {
        self.dataset = dataset
        self.share = share
        self.units = units
    }
}

/// The order a dataset's rows are served in.
public enum ShuffleSpec: Sendable, Hashable {
    /// Row `k` of the dataset is its `k`-th draw: documents in shard order, as tokenized.
    case off
    /// The `k`-th draw reads a row chosen by a seeded bijection within blocks of `span` consecutive
    /// rows (`RowShuffle`): rows of nearby documents are mixed, every row is still read once per
    /// pass, and any draw is computed directly.
    case rows(span: Int)
}

/// How documents are packed into sequences.
public enum PackingSpec: Sendable, Hashable {
    /// Documents are concatenated; sequences cut the stream every `sequenceLength` tokens
    /// (nanotron's and Megatron's way; documents cross sequence boundaries).
    case concat
    /// Whole documents are placed best-fit into sequences, the rest padded with `padToken`;
    /// `lookahead` documents are considered at a time.
    case bestfit(padToken: UInt32, lookahead: Int)
}
