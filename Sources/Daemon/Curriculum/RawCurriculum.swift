/// A curriculum as read from one of the input forms, before the checks that are common to all
/// forms (contiguous stages, weights, folders) turn it into a ``Curriculum``.
struct RawCurriculum {
    var format: CurriculumFormat
    /// The sequence length, or nil if it was missing or invalid (already reported).
    var sequenceLength: Int?
    var seed: UInt64
    var packing: PackingSpec
    var stages: [RawStage]
    var shuffle: ShuffleSpec = .off
    /// A nanotron config's batch geometry.
    var nanotronBatch: NanotronBatch?
}

/// One stage as written. Boundaries are nil when they were missing or invalid (already reported).
struct RawStage {
    var name: String
    var location: SourceLocation
    var start: UInt64?
    var startLocation: SourceLocation
    var end: UInt64?
    var endLocation: SourceLocation
    /// Where the mixture (or the dataset lists) is written.
    var mixtureLocation: SourceLocation
    var entries: [RawWeight]
    /// What the file says the shards hold (nanotron configs).
    var declaredFormat = DeclaredShardFormat()
}

/// One dataset of a stage as written.
struct RawWeight {
    /// The dataset's display name (the first one written for its identity names the dataset).
    var name: String
    /// The dataset's identity: entries of one identity are one dataset, whose read position carries
    /// over between stages. A nanotron `dataset_folder` (`s3://…/stack-edu-HTML`), a tokenfeed
    /// `identity:`, else the name.
    var identity: String
    /// The name as the file writes it, for messages (a tokenfeed alias, a nanotron read path).
    var writtenName: String
    var folder: FolderReference
    /// The weight, or nil if it was missing or invalid (already reported).
    var weight: ExactDecimal?
    /// Where the dataset is named.
    var location: SourceLocation

    init(name: String, identity: String? = nil, writtenName: String? = nil, folder: FolderReference,
         weight: ExactDecimal?, location: SourceLocation) {
        self.name = name
        self.identity = identity ?? name
        self.writtenName = writtenName ?? name
        self.folder = folder
        self.weight = weight
        self.location = location
    }
}

/// Where a dataset's folder is, before it is resolved against a data root.
enum FolderReference: Hashable {
    /// A path relative to the data root (or, without one, to the curriculum file's folder).
    case relative(String)
    /// A path used as written (absolute, or relative to the working directory).
    case asWritten(String)
    /// Not a local path (an `s3://` URL) and no data root to find a copy in.
    case unresolvable(String)
}
