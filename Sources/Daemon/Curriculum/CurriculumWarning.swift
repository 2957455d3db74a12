/// Something in a curriculum that is allowed but probably not meant, with where it is written.
public struct CurriculumWarning: Sendable, Hashable, CustomStringConvertible {
    /// Where it is.
    public var location: SourceLocation
    /// What it is and what to do if it is not meant.
    public var message: String

    public init(_ location: SourceLocation, _ message: String) {
        self.location = location
        self.message = message
    }

    /// `file:line:column: warning: message`.
    public var description: String { "\(location): warning: \(message)" }
}
