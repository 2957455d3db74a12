/// A coarse kind of dataset guessed from its name, for grouping in reports
/// (`tokenfeed plan`). Only presentation depends on it, never the stream.
public enum DatasetCategory: String, Sendable, Hashable, CaseIterable {
    case web, code, math, multilingual, reference, reasoning, other

    /// The category a dataset name suggests: the first rule whose word the (lower-cased) name
    /// contains — math, then multilingual, reference, code, reasoning/synthetic, web — else other.
    public init(datasetName: String) {
        let name = datasetName.lowercased()
        for (category, words) in Self.rules where words.contains(where: name.contains) {
            self = category
            return
        }
        self = .other
    }

    static let rules: [(DatasetCategory, [String])] = [
        (.math, ["math", "gsm"]),
        (.multilingual, ["fw2-", "fineweb-2", "fineweb2", "multilingual", "mwiki"]),
        (.reference, ["wiki", "pes2o", "arxiv", "stackexchange", "books", "pubmed"]),
        (.code, ["stack", "code", "github", "kaggle", "jupyter", "pull-request", "notebook", "issues", "starcoder"]),
        (.reasoning, ["reasoning", "cosmopedia", "synth", "instruct", "2students", "problem-solving"]),
        (.web, ["fineweb", "dclm", "web", "c4", "pile", "redpajama", "refinedweb"]),
    ]
}
