import CYAML

/// Parses YAML text into a ``YAMLNode`` tree with libyaml's event API, keeping the line and
/// column of every node.
public enum YAMLParser {
    /// Parses the first document of `text`.
    ///
    /// - Parameters:
    ///   - text: the YAML source.
    ///   - file: the file name used in locations and errors.
    /// - Returns: the document's root node, or nil for an empty document.
    /// - Throws: ``CurriculumErrors`` for a syntax error (libyaml's message and position),
    ///   a duplicate key in a mapping, a non-scalar key, an unknown alias, or lists and mappings
    ///   nested deeper than ``CurriculumLimits/maxNestingDepth``. Time and memory are linear in
    ///   the size of the text.
    public static func parse(_ text: String, file: String) throws(CurriculumErrors) -> YAMLNode? {
        var builder = TreeBuilder(file: file)
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw CurriculumErrors([CurriculumError(SourceLocation(file: file, line: 1, column: 1), "could not start the YAML parser")])
        }
        defer { yaml_parser_delete(&parser) }
        var bytes = Array(text.utf8)
        let result: Result<YAMLNode?, CurriculumErrors> = bytes.withUnsafeMutableBufferPointer { buffer in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var event = yaml_event_t()
            while true {
                guard yaml_parser_parse(&parser, &event) == 1 else {
                    let mark = parser.problem_mark
                    let problem = parser.problem.map { String(cString: $0) } ?? "malformed YAML"
                    var message = "YAML syntax: \(problem)"
                    if let context = parser.context { message += " (\(String(cString: context)))" }
                    let location = SourceLocation(file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1)
                    return .failure(CurriculumErrors([CurriculumError(location, message)]))
                }
                defer { yaml_event_delete(&event) }
                if event.type == YAML_STREAM_END_EVENT || event.type == YAML_DOCUMENT_END_EVENT {
                    return .success(builder.root)
                }
                guard builder.consume(event) else { return .success(nil) }
            }
        }
        let root = try result.get()
        if !builder.errors.isEmpty { throw CurriculumErrors(builder.errors) }
        return root
    }
}

/// Turns libyaml events into nodes with a stack of open collections.
///
/// Linear in the size of the document: each open collection is appended to in place (never
/// copied), and a mapping's duplicate-key check is a dictionary lookup. Nesting deeper than
/// ``CurriculumLimits/maxNestingDepth`` stops the build with an error, so neither the tree nor
/// its (recursive) destruction can exhaust the stack.
private struct TreeBuilder {
    /// One list or mapping whose end event has not arrived yet.
    struct Open {
        let isMapping: Bool
        let location: SourceLocation
        let anchor: String?
        var items: [YAMLNode] = []
        var entries: [YAMLEntry] = []
        var keyLocations: [String: SourceLocation] = [:]
        var pendingKey: YAMLNode?
    }

    let file: String
    var stack: [Open] = []
    var root: YAMLNode?
    var anchors: [String: YAMLNode] = [:]
    var errors: [CurriculumError] = []

    init(file: String) { self.file = file }

    func location(_ mark: yaml_mark_t) -> SourceLocation {
        SourceLocation(file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1)
    }

    static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        guard let pointer else { return nil }
        return String(cString: pointer)
    }

    /// Adds one event to the tree; false (after recording the error) when the document nests
    /// deeper than the limit and parsing must stop.
    mutating func consume(_ event: yaml_event_t) -> Bool {
        let at = location(event.start_mark)
        switch event.type {
        case YAML_SCALAR_EVENT:
            let s = event.data.scalar
            let text: String
            if let value = s.value {
                text = String(decoding: UnsafeBufferPointer(start: value, count: Int(s.length)), as: UTF8.self)
            } else {
                text = ""
            }
            let node = YAMLNode.scalar(text, plain: s.style == YAML_PLAIN_SCALAR_STYLE, at)
            if let anchor = Self.string(s.anchor) { anchors[anchor] = node }
            add(node)
        case YAML_ALIAS_EVENT:
            let name = Self.string(event.data.alias.anchor) ?? ""
            if let node = anchors[name] {
                add(node)
            } else {
                errors.append(CurriculumError(at, "unknown alias *\(name); define the anchor &\(name) before using it"))
                add(.scalar("", plain: true, at))
            }
        case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
            guard stack.count < CurriculumLimits.maxNestingDepth else {
                errors.append(CurriculumError(at, "lists and mappings nest deeper than \(CurriculumLimits.maxNestingDepth) levels here; a curriculum needs only a few levels, so flatten the document"))
                return false
            }
            let isMapping = event.type == YAML_MAPPING_START_EVENT
            let anchor = isMapping ? Self.string(event.data.mapping_start.anchor) : Self.string(event.data.sequence_start.anchor)
            stack.append(Open(isMapping: isMapping, location: at, anchor: anchor))
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            guard let open = stack.popLast() else { return true }
            let node = open.isMapping ? YAMLNode.mapping(open.entries, open.location) : YAMLNode.sequence(open.items, open.location)
            if let anchor = open.anchor { anchors[anchor] = node }
            add(node)
        default:
            break
        }
        return true
    }

    /// Appends `node` to the innermost open collection (as an item, a key or a value), in place.
    mutating func add(_ node: YAMLNode) {
        guard !stack.isEmpty else {
            if root == nil { root = node }
            return
        }
        let top = stack.count - 1
        guard stack[top].isMapping else {
            stack[top].items.append(node)
            return
        }
        guard let key = stack[top].pendingKey else {
            stack[top].pendingKey = node
            return
        }
        stack[top].pendingKey = nil
        guard let text = key.scalarText else {
            errors.append(CurriculumError(key.location, "a mapping key must be a plain name, not \(key.kindDescription)"))
            return
        }
        if let first = stack[top].keyLocations[text] {
            errors.append(CurriculumError(key.location, "duplicate key '\(text)' (first given at line \(first.line)); give each key once"))
        } else {
            stack[top].keyLocations[text] = key.location
            stack[top].entries.append(YAMLEntry(key: text, keyLocation: key.location, value: node))
        }
    }
}
