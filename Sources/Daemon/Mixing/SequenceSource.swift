/// Where one global sequence comes from.
public struct SequenceSource: Sendable, Hashable {
    /// The stage the sequence belongs to.
    public var stage: Int
    /// The dataset (index into ``Curriculum/datasets``).
    public var dataset: Int
    /// How many earlier global sequences — in this stage and every earlier one — came from the
    /// same dataset: the sequence's position in its dataset's stream (read positions carry over
    /// between stages).
    public var ordinal: UInt64

    public init(stage: Int, dataset: Int, ordinal: UInt64) {
        self.stage = stage
        self.dataset = dataset
        self.ordinal = ordinal
    }
}
