/// A YAML document as a tree, every node carrying the place it starts at.
///
/// Built from libyaml's event stream by ``YAMLParser``. Aliases are resolved (an alias node is
/// a copy of its anchored node, keeping the anchor's location). Scalars keep their text and
/// whether they were quoted, so `"1"` (a string) and `1` (a number) can be told apart.
public indirect enum YAMLNode: Sendable, Hashable {
    /// A scalar: its text, whether it was written plain (unquoted), and where it starts.
    case scalar(String, plain: Bool, SourceLocation)
    /// A sequence of nodes.
    case sequence([YAMLNode], SourceLocation)
    /// A mapping, in file order. Keys are scalars (complex keys are rejected by the parser).
    case mapping([YAMLEntry], SourceLocation)

    /// Where the node starts.
    public var location: SourceLocation {
        switch self {
        case .scalar(_, _, let l), .sequence(_, let l), .mapping(_, let l): return l
        }
    }

    /// The scalar text, or nil if the node is a sequence or a mapping.
    public var scalarText: String? {
        if case .scalar(let s, _, _) = self { return s }
        return nil
    }

    /// True for a plain `null`, `~` or empty scalar (YAML's null).
    public var isNull: Bool {
        if case .scalar(let s, let plain, _) = self { return plain && (s == "" || s == "~" || s == "null" || s == "Null" || s == "NULL") }
        return false
    }

    /// A short word for the node's kind, for messages ("a mapping", "a list", "a scalar").
    public var kindDescription: String {
        switch self {
        case .scalar: return isNull ? "null" : "a scalar"
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        }
    }
}

/// One `key: value` pair of a YAML mapping.
public struct YAMLEntry: Sendable, Hashable {
    /// The key's text.
    public var key: String
    /// Where the key starts.
    public var keyLocation: SourceLocation
    /// The value.
    public var value: YAMLNode

    public init(key: String, keyLocation: SourceLocation, value: YAMLNode) {
        self.key = key
        self.keyLocation = keyLocation
        self.value = value
    }
}
