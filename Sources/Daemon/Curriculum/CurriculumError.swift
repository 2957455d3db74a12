/// One problem in a curriculum file: where it is and what would be right.
public struct CurriculumError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Where the problem is.
    public var location: SourceLocation
    /// What is wrong and what would be right, in words a person can act on.
    public var message: String

    public init(_ location: SourceLocation, _ message: String) {
        self.location = location
        self.message = message
    }

    /// The file the problem is in.
    public var file: String { location.file }
    /// 1-based line of the problem.
    public var line: Int { location.line }
    /// 1-based column of the problem.
    public var column: Int { location.column }

    /// `file:line:column: error: message`.
    public var description: String { "\(location): error: \(message)" }
}

/// Every problem found in a curriculum (all of them, not only the first), in file order.
public struct CurriculumErrors: Error, Sendable, Hashable, CustomStringConvertible {
    /// The problems, sorted by file, line and column.
    public var diagnostics: [CurriculumError]

    public init(_ diagnostics: [CurriculumError]) {
        self.diagnostics = diagnostics.sorted {
            ($0.file, $0.line, $0.column, $0.message) < ($1.file, $1.line, $1.column, $1.message)
        }
    }

    /// One `file:line:column: error: message` line per problem.
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
