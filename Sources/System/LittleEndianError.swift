/// A little-endian read that failed: which field, where, and why.
///
/// `description` is "<field> at offset <offset>: <problem>", e.g.
/// "world_size at offset 32: truncated: needs 4 bytes, 2 left"; a format's own error (the wire
/// protocol's `malformed_frame`, a shard file's error) puts its name in front.
public struct LittleEndianError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The field being read, e.g. "world_size" or "job_id.length".
    public let field: String
    /// Where the field starts, counted from the start of the enclosing file or frame (the reader's
    /// `baseOffset` plus its position).
    public let offset: Int
    /// What is wrong, e.g. "truncated: needs 4 bytes, 2 left".
    public let problem: String

    public init(field: String, offset: Int, problem: String) {
        self.field = field
        self.offset = offset
        self.problem = problem
    }

    public var description: String { "\(field) at offset \(offset): \(problem)" }
}
