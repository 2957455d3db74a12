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
    ///   a duplicate key in a mapping, a non-scalar key, or an unknown alias.
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
                builder.consume(event)
            }
        }
        let root = try result.get()
        if !builder.errors.isEmpty { throw CurriculumErrors(builder.errors) }
        return root
    }
}

/// Turns libyaml events into nodes with a stack of open collections.
private struct TreeBuilder {
    enum Open {
        case sequence([YAMLNode], SourceLocation, anchor: String?)
        case mapping([YAMLEntry], pendingKey: YAMLNode?, SourceLocation, anchor: String?)
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

    mutating func consume(_ event: yaml_event_t) {
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
        case YAML_SEQUENCE_START_EVENT:
            stack.append(.sequence([], at, anchor: Self.string(event.data.sequence_start.anchor)))
        case YAML_MAPPING_START_EVENT:
            stack.append(.mapping([], pendingKey: nil, at, anchor: Self.string(event.data.mapping_start.anchor)))
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            guard let open = stack.popLast() else { return }
            switch open {
            case .sequence(let items, let l, let anchor):
                let node = YAMLNode.sequence(items, l)
                if let anchor { anchors[anchor] = node }
                add(node)
            case .mapping(let entries, _, let l, let anchor):
                let node = YAMLNode.mapping(entries, l)
                if let anchor { anchors[anchor] = node }
                add(node)
            }
        default:
            break
        }
    }

    mutating func add(_ node: YAMLNode) {
        guard let top = stack.popLast() else {
            if root == nil { root = node }
            return
        }
        switch top {
        case .sequence(var items, let l, let anchor):
            items.append(node)
            stack.append(.sequence(items, l, anchor: anchor))
        case .mapping(var entries, let pending, let l, let anchor):
            guard let key = pending else {
                stack.append(.mapping(entries, pendingKey: node, l, anchor: anchor))
                return
            }
            if let text = key.scalarText {
                if let first = entries.first(where: { $0.key == text }) {
                    errors.append(CurriculumError(key.location, "duplicate key '\(text)' (first given at line \(first.keyLocation.line)); give each key once"))
                } else {
                    entries.append(YAMLEntry(key: text, keyLocation: key.location, value: node))
                }
            } else {
                errors.append(CurriculumError(key.location, "a mapping key must be a plain name, not \(key.kindDescription)"))
            }
            stack.append(.mapping(entries, pendingKey: nil, l, anchor: anchor))
        }
    }
}
