import TokenfeedCurriculum
import TokenfeedMixing

/// The global sequences an export writes, `[first, end)`, and how the user named them.
///
/// Global sequence `i` covers tokens `[i·L, (i+1)·L)` of the curriculum (plus the next token as its
/// last label), so a token range `[A, B)` is the sequences `[⌈A/L⌉, ⌈B/L⌉)` — the same rounding the
/// curriculum uses for stage starts — and steps `[A, B)` of `W` ranks × `b` sequences are the
/// sequences `[A·W·b, B·W·b)`.
struct ExportRange: Equatable {
    var first: UInt64
    var end: UInt64
    /// The option as given, for the manifest and messages: `--stage decay`, `--tokens 8T..9T`.
    var given: String

    var count: UInt64 { end - first }

    /// What the user asked for.
    enum Request {
        case stage(String)
        case tokens(String)
        case steps(String, worldSize: Int, batchSize: Int)
    }

    /// Resolves `request` against `plan` (whose stages are `curriculum`'s).
    /// - Throws: `ExportError` naming the option: an unknown stage, a malformed or empty range, or a
    ///   range past the end of the curriculum.
    static func resolve(_ request: Request, curriculum: Curriculum, plan: StreamPlan) throws(ExportError) -> ExportRange {
        let total = plan.totalSequences
        let length = UInt64(curriculum.sequenceLength)
        let range: ExportRange
        switch request {
        case .stage(let name):
            guard let s = curriculum.stages.firstIndex(where: { $0.name == name }) else {
                let names = curriculum.stages.map { "'\($0.name)'" }.joined(separator: ", ")
                throw ExportError("--stage: the curriculum has no stage '\(name)' (its stages: \(names))")
            }
            range = ExportRange(first: plan.firstSequence(ofStage: s), end: plan.firstSequence(ofStage: s + 1),
                                given: "--stage \(name)")
        case .tokens(let text):
            let (a, b) = try bounds(text, option: "--tokens", parse: TokenQuantity.parse,
                                    whole: (0, total.multipliedReportingOverflow(by: length).partialValue))
            range = ExportRange(first: ceilDiv(a, length), end: ceilDiv(b, length), given: "--tokens \(text)")
        case .steps(let text, let worldSize, let batchSize):
            let perStep = UInt64(worldSize) * UInt64(batchSize)
            let (a, b) = try bounds(text, option: "--steps", parse: { UInt64($0.filter { $0 != "_" }) },
                                    whole: (0, total / perStep))
            let (first, o1) = a.multipliedReportingOverflow(by: perStep)
            let (end, o2) = b.multipliedReportingOverflow(by: perStep)
            guard !o1, !o2 else { throw ExportError("--steps \(text): too large") }
            range = ExportRange(first: first, end: end, given: "--steps \(text) (world size \(worldSize), batch size \(batchSize))")
        }
        guard range.first < range.end else {
            throw ExportError("\(range.given): holds no sequence (sequences \(range.first)..<\(range.end))")
        }
        guard range.end <= total else {
            throw ExportError("\(range.given): ends at sequence \(range.end), past the curriculum's \(total) sequences")
        }
        return range
    }

    /// Parses `A..B`; an empty side is the start or the end of `whole`.
    private static func bounds(_ text: String, option: String, parse: (String) -> UInt64?,
                               whole: (UInt64, UInt64)) throws(ExportError) -> (UInt64, UInt64) {
        let parts = text.split(separator: "..", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 else { throw ExportError("\(option) \(text): expected A..B (either side may be empty)") }
        func side(_ s: String, _ otherwise: UInt64) throws(ExportError) -> UInt64 {
            let trimmed = s.trimmingSpaces
            if trimmed.isEmpty { return otherwise }
            guard let value = parse(trimmed) else { throw ExportError("\(option) \(text): '\(trimmed)' is not a whole number") }
            return value
        }
        let a = try side(parts[0], whole.0), b = try side(parts[1], whole.1)
        guard a < b else { throw ExportError("\(option) \(text): the start must be below the end") }
        return (a, b)
    }

    private static func ceilDiv(_ a: UInt64, _ b: UInt64) -> UInt64 { a / b + (a % b == 0 ? 0 : 1) }
}

/// Why an export cannot go on: what and where, for one line on stderr.
struct ExportError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension String {
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
