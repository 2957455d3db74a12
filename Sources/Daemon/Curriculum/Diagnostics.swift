/// Collects the problems of a curriculum while it is read, so all of them are reported.
struct Diagnostics {
    private(set) var errors: [CurriculumError] = []

    var isEmpty: Bool { errors.isEmpty }

    mutating func error(_ location: SourceLocation, _ message: String) {
        errors.append(CurriculumError(location, message))
    }

    /// The node as a mapping, or nil after reporting what was expected.
    mutating func mapping(_ node: YAMLNode, _ what: String) -> MappingReader? {
        if case .mapping(let entries, let location) = node { return MappingReader(entries: entries, location: location) }
        error(node.location, "\(what) must be a mapping of keys to values, not \(node.kindDescription)")
        return nil
    }

    /// The node as a list, or nil after reporting what was expected.
    mutating func sequence(_ node: YAMLNode, _ what: String) -> [YAMLNode]? {
        if case .sequence(let items, _) = node { return items }
        error(node.location, "\(what) must be a list, not \(node.kindDescription)")
        return nil
    }

    /// The node's text, or nil after reporting that a text was expected.
    mutating func string(_ node: YAMLNode, _ what: String) -> String? {
        if case .scalar(let text, _, _) = node, !node.isNull { return text }
        error(node.location, "\(what) must be a text, not \(node.kindDescription)")
        return nil
    }

    /// The node as a whole number in `range`, or nil after reporting what was expected.
    mutating func integer(_ node: YAMLNode, _ what: String, in range: ClosedRange<UInt64>) -> UInt64? {
        guard case .scalar(let text, _, _) = node, !node.isNull else {
            error(node.location, "\(what) must be a whole number, not \(node.kindDescription)")
            return nil
        }
        guard let decimal = try? ExactDecimal.parse(text), let value = decimal.integerValue else {
            error(node.location, "\(what) must be a whole number, not '\(text)'")
            return nil
        }
        guard range.contains(value) else {
            error(node.location, "\(what) must be between \(range.lowerBound) and \(range.upperBound), not \(value)")
            return nil
        }
        return value
    }

    /// The node as a token count (`8T`, `9.5T`, `500M`, `1_000_000`), or nil after reporting.
    mutating func tokens(_ node: YAMLNode, _ what: String) -> UInt64? {
        guard case .scalar(let text, _, _) = node, !node.isNull else {
            error(node.location, "\(what) must be a token count such as 8T, 9.5T, 500M or 1_000_000, not \(node.kindDescription)")
            return nil
        }
        guard let value = TokenQuantity.parse(text) else {
            if TokenQuantity.isTooLarge(text) {
                error(node.location, "\(what) ('\(text)') does not fit in 64 bits; tokenfeed's limit is \(CurriculumLimits.maxEndToken) (2^62) tokens")
            } else {
                error(node.location, "\(what) must be a whole, non-negative token count such as 8T, 9.5T, 500M or 1_000_000, not '\(text)'")
            }
            return nil
        }
        return value
    }

    /// The node as a YAML boolean (`true`/`false`, any case), or nil after reporting what was expected.
    mutating func boolean(_ node: YAMLNode, _ what: String) -> Bool? {
        if case .scalar(let text, _, _) = node, !node.isNull {
            switch text.lowercased() {
            case "true": return true
            case "false": return false
            default: break
            }
        }
        if case .scalar(let text, _, _) = node, !node.isNull {
            error(node.location, "\(what) must be true or false, not '\(text)'")
        } else {
            error(node.location, "\(what) must be true or false, not \(node.kindDescription)")
        }
        return nil
    }

    /// The node as a non-negative exact decimal weight, or nil after reporting what is wrong.
    mutating func weight(_ node: YAMLNode, _ what: String) -> ExactDecimal? {
        guard case .scalar(let text, _, _) = node, !node.isNull else {
            error(node.location, "\(what) must be a number such as 0.25, not \(node.kindDescription)")
            return nil
        }
        let problem: ExactDecimal.ParseError
        do {
            return try ExactDecimal.parse(text.trimmingSpaces)
        } catch let caught {
            problem = caught
        }
        switch problem {
        case .negative:
            error(node.location, "\(what) is negative (\(text)); weights must be zero or positive")
        case .tooManyDigits:
            error(node.location, "\(what) has too many digits (\(text)); use at most 18 significant digits")
        case .notANumber:
            error(node.location, "\(what) must be a number such as 0.25, not '\(text)'")
        }
        return nil
    }
}

/// Reads the keys of one YAML mapping and reports the ones nobody asked for.
struct MappingReader {
    let entries: [YAMLEntry]
    let location: SourceLocation

    /// The value of `key`, if present.
    func value(_ key: String) -> YAMLNode? { entries.first { $0.key == key }?.value }

    /// The entry of `key`, if present.
    func entry(_ key: String) -> YAMLEntry? { entries.first { $0.key == key } }

    /// The value of `key`, or nil after reporting that it is missing.
    func required(_ key: String, in what: String, _ diagnostics: inout Diagnostics) -> YAMLNode? {
        if let node = value(key) { return node }
        diagnostics.error(location, "\(what) is missing the key '\(key)'")
        return nil
    }

    /// Reports every key not in `allowed`, naming the allowed keys (and the closest one).
    func rejectUnknownKeys(allowed: [String], in what: String, _ diagnostics: inout Diagnostics) {
        for entry in entries where !allowed.contains(entry.key) {
            var message = "unknown key '\(entry.key)' in \(what)"
            if let near = closestCandidate(to: entry.key, among: allowed) {
                message += "; did you mean '\(near)'?"
            }
            message += " (expected one of: \(allowed.joined(separator: ", ")))"
            diagnostics.error(entry.keyLocation, message)
        }
    }
}

/// The candidate closest to `word` for a "did you mean" suggestion: the one at the smallest edit
/// distance, ignoring case, when that distance is at most max(2, a third of the word); nil when
/// nothing is that close (or `word` itself is a candidate).
public func closestCandidate(to word: String, among candidates: [String]) -> String? {
    let key = word.lowercased()
    var best: (candidate: String, distance: Int)?
    for candidate in candidates where candidate != word {
        let distance = editDistance(candidate.lowercased(), key)
        if let current = best, current.distance <= distance { continue }
        best = (candidate, distance)
    }
    guard let best, best.distance <= max(2, word.count / 3) else { return nil }
    return best.candidate
}

/// Levenshtein distance, for "did you mean" suggestions.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.utf8), b = Array(b.utf8)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}

extension String {
    /// The text without leading and trailing spaces and tabs.
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
