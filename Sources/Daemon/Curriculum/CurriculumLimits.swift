import TokenfeedProtocol

/// The largest values a curriculum may hold, checked when it is loaded so that nothing the
/// daemon later puts on the wire, in a stream plan or in a schedule can trap.
///
/// Most come from the protocol (docs/PROTOCOL.md, section 9: what a Welcome, a Batch or a Stats
/// frame can carry); the others keep the stream plan's arithmetic inside 64 bits.
public enum CurriculumLimits {
    /// Longest `sequence_length`: a row of `L + 1` tokens must fit the Batch frame's 24-bit row length.
    public static let maxSequenceLength = UInt64(Welcome.maxSequenceLength)
    /// Longest stage name in UTF-8 bytes (a Welcome's stage table).
    public static let maxStageNameBytes = StageInfo.maxNameBytes
    /// Longest dataset name in UTF-8 bytes (a Welcome's dataset table and a Stats frame).
    public static let maxDatasetNameBytes = DatasetInfo.maxNameBytes
    /// Most stages in a curriculum (a Welcome's stage count is at most 65,535).
    public static let maxStages = 0xFFFF
    /// Most datasets in a curriculum and in one stage (a Welcome's and a Stats frame's dataset
    /// count; a stage schedule names its datasets with 16 bits).
    public static let maxDatasets = 0xFFFF
    /// The largest token at which a stage may end: 2^62, so that every token position, sequence
    /// index and per-dataset count of the stream plan stays far inside 64 bits (`start + L` and
    /// `index × L` cannot overflow). That is 4.6 · 10^18 tokens, about 400,000 times SmolLM3's run.
    public static let maxEndToken: UInt64 = 1 << 62
    /// Deepest nesting of lists and mappings in a curriculum YAML file. Real curricula nest
    /// about six levels; the limit keeps the parser's tree (and its recursive destruction) small.
    public static let maxNestingDepth = 64
    /// The largest `shuffle.span` (rows per shuffled block): 2^24, as `RowShuffle` takes.
    public static let maxShuffleSpan = 1 << 24
}
