/// Reads the simple dataset list some users write by hand, one file per stage:
///
/// ```yaml
/// datasets:
///   - {name: "HuggingFaceFW/fineweb-2", config: "vie_Latn", weight: 0.00325}
///   - {name: "HuggingFaceFW/fineweb-edu", weight: 0.3, path: fineweb-edu}
/// ```
///
/// A dataset's name is `name`, or `name/config` when a config is given; its folder is `path`
/// when given, else the name (both relative to the data root).
enum DatasetListFormat {
    static let entryKeys = ["name", "config", "weight", "path"]

    /// The entries of a list document (its top-level `datasets:`), reporting every problem.
    static func entries(of root: MappingReader, _ diagnostics: inout Diagnostics) -> [RawWeight] {
        root.rejectUnknownKeys(allowed: ["datasets"], in: "a dataset list", &diagnostics)
        guard let list = root.required("datasets", in: "the dataset list", &diagnostics),
              let items = diagnostics.sequence(list, "'datasets'") else { return [] }
        var result: [RawWeight] = []
        for item in items {
            guard let entry = diagnostics.mapping(item, "a dataset entry") else { continue }
            entry.rejectUnknownKeys(allowed: entryKeys, in: "a dataset entry", &diagnostics)
            guard let nameNode = entry.required("name", in: "this dataset entry", &diagnostics),
                  let name = diagnostics.string(nameNode, "'name'") else { continue }
            var fullName = name
            if let configNode = entry.value("config"), let config = diagnostics.string(configNode, "'config'") {
                fullName += "/" + config
            }
            var folder = FolderReference.relative(fullName)
            if let pathNode = entry.value("path"), let path = diagnostics.string(pathNode, "'path'") {
                folder = path.hasPrefix("/") ? .asWritten(path) : .relative(path)
            }
            var weight: ExactDecimal?
            if let weightNode = entry.required("weight", in: "dataset '\(fullName)'", &diagnostics) {
                weight = diagnostics.weight(weightNode, "the weight of '\(fullName)'")
            }
            result.append(RawWeight(name: fullName, folder: folder, weight: weight, location: nameNode.location))
        }
        if items.isEmpty { diagnostics.error(list.location, "the dataset list is empty; list at least one dataset with a positive weight") }
        return result
    }

    /// Reads a stand-alone list file as a one-stage curriculum: sequence length 4096, seed 0,
    /// the stage open-ended (it ends at token 2^62).
    static func read(_ root: MappingReader, file: String, _ diagnostics: inout Diagnostics) -> RawCurriculum {
        let entries = entries(of: root, &diagnostics)
        let stage = RawStage(name: baseName(file), location: root.location,
                             start: 0, startLocation: root.location,
                             end: openEnd, endLocation: root.location,
                             mixtureLocation: root.value("datasets")?.location ?? root.location, entries: entries)
        return RawCurriculum(format: .datasetList, sequenceLength: defaultSequenceLength, seed: 0,
                             packing: .concat, stages: [stage])
    }

    /// The sequence length of a stand-alone list file.
    static let defaultSequenceLength = 4096
    /// The end of the single stage of a stand-alone list file.
    static let openEnd: UInt64 = CurriculumLimits.maxEndToken
}

/// The last path component of `path`, without trailing slashes and without a `.yaml`/`.yml` extension.
func baseName(_ path: String) -> String {
    var components = path.split(separator: "/", omittingEmptySubsequences: true)
    guard var last = components.popLast().map(String.init) else { return path }
    for ext in [".yaml", ".yml"] where last.hasSuffix(ext) { last.removeLast(ext.count) }
    return last
}
