/// A problem with a shard or with the input it is made from, naming the file and, where it
/// applies, the frame.
public struct ShardError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The file the problem is in.
    public var path: String
    /// The data frame (0-based) the problem is in, when it is in one.
    public var frame: Int?
    /// The metadata field the problem is in (as named in docs/SHARDS.md, e.g. `token_count`), when
    /// it is one; also part of `problem`.
    public var field: String?
    /// What is wrong, in words a person can act on.
    public var problem: String

    public init(path: String, frame: Int? = nil, field: String? = nil, _ problem: String) {
        self.path = path
        self.frame = frame
        self.field = field
        self.problem = problem
    }

    public var description: String {
        if let frame { return "\(path): frame \(frame): \(problem)" }
        return "\(path): \(problem)"
    }
}
