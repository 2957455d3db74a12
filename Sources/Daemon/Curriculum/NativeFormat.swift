/// Reads tokenfeed's own curriculum format (documented in docs/CURRICULUM.md):
///
/// ```yaml
/// sequence_length: 4096
/// seed: 6
/// packing: concat                    # or {mode: bestfit, pad_token: 128004, lookahead: 64}
/// shuffle: {span: 4096}              # optional: rows served in a seeded order within blocks of 4096
/// datasets:                          # optional: name -> folder (relative to the data root)
///   fineweb-edu: web/fineweb-edu
///   html-old: {folder: stack-v2-HTML, identity: stack-edu-HTML}   # the dataset stack-edu-HTML, another folder
/// stages:
///   - name: stable
///     start: 0
///     end: 8_139_571_200_000         # or 8.14T, 500M, ...
///     mixture:                       # name -> weight (normalised per stage)
///       fineweb-edu: 0.333
///   - name: decay
///     start: 8_139_571_200_000
///     end: 11T
///     mixture_file: decay.yaml       # a dataset list file, relative to this file
/// ```
enum NativeFormat {
    static let topKeys = ["sequence_length", "seed", "packing", "shuffle", "datasets", "stages", "description"]
    static let stageKeys = ["name", "start", "end", "mixture", "mixture_file", "description"]
    static let packingKeys = ["mode", "pad_token", "lookahead"]

    /// Reads the document, reporting every problem. `readList` loads a `mixture_file`
    /// (given the path as written and where it is written).
    static func read(_ root: MappingReader, _ diagnostics: inout Diagnostics,
                     readList: (String, SourceLocation, inout Diagnostics) -> [RawWeight]) -> RawCurriculum {
        root.rejectUnknownKeys(allowed: topKeys, in: "a tokenfeed curriculum", &diagnostics)
        var sequenceLength: Int?
        if let node = root.required("sequence_length", in: "the curriculum", &diagnostics),
           let value = diagnostics.integer(node, "'sequence_length'", in: 1...CurriculumLimits.maxSequenceLength) {
            sequenceLength = Int(value)
        }
        var seed: UInt64 = 0
        if let node = root.value("seed"), let value = diagnostics.integer(node, "'seed'", in: 0...UInt64.max) {
            seed = value
        }
        let packing = root.value("packing").map { readPacking($0, &diagnostics) } ?? .concat

        var folders: [String: DatasetEntry] = [:]
        if let node = root.value("datasets"), let map = diagnostics.mapping(node, "'datasets' (dataset name -> folder)") {
            for entry in map.entries {
                if let dataset = readDataset(entry.key, entry.value, &diagnostics) { folders[entry.key] = dataset }
            }
            for (name, entry) in folders {
                if let identity = entry.identity, let target = folders[identity], target.identity != nil, target.identity != identity {
                    diagnostics.error(entry.identityLocation ?? node.location, "dataset '\(name)' takes the identity of '\(identity)', which itself takes the identity of '\(target.identity!)'; name the final identity, '\(target.identity!)', directly")
                }
            }
        }

        var stages: [RawStage] = []
        if let node = root.required("stages", in: "the curriculum", &diagnostics),
           let items = diagnostics.sequence(node, "'stages'") {
            if items.isEmpty { diagnostics.error(node.location, "'stages' is empty; give at least one stage") }
            for (index, item) in items.enumerated() {
                guard let map = diagnostics.mapping(item, "a stage") else { continue }
                if let stage = readStage(map, index: index, folders: folders, &diagnostics, readList: readList) {
                    stages.append(stage)
                }
            }
        }
        reportMisspelledNames(stages, declared: folders, &diagnostics)
        var raw = RawCurriculum(format: .tokenfeed, sequenceLength: sequenceLength, seed: seed, packing: packing, stages: stages)
        raw.shuffle = root.value("shuffle").map { readShuffle($0, &diagnostics) } ?? .off
        return raw
    }

    /// A mixture name not under `datasets:` reads the folder of that name. When it is close to a
    /// declared name that no stage uses, it is a typo that would read the wrong folder (or none):
    /// an error naming the declared one.
    static func reportMisspelledNames(_ stages: [RawStage], declared: [String: DatasetEntry], _ diagnostics: inout Diagnostics) {
        guard !declared.isEmpty else { return }
        let used = Set(stages.flatMap { $0.entries.map(\.name) })
        let unused = declared.keys.filter { !used.contains($0) }.sorted()
        guard !unused.isEmpty else { return }
        for stage in stages {
            for entry in stage.entries where declared[entry.name] == nil {
                if let near = closestCandidate(to: entry.name, among: unused) {
                    diagnostics.error(entry.location, "'\(entry.name)' in stage '\(stage.name)' is not under 'datasets:', where '\(near)' is declared and used by no stage; did you mean '\(near)'? (a name not listed there reads the folder of that name)")
                }
            }
        }
    }

    static func readStage(_ map: MappingReader, index: Int, folders: [String: DatasetEntry],
                          _ diagnostics: inout Diagnostics,
                          readList: (String, SourceLocation, inout Diagnostics) -> [RawWeight]) -> RawStage? {
        map.rejectUnknownKeys(allowed: stageKeys, in: "a stage", &diagnostics)
        var name = "stage \(index + 1)"
        if let node = map.required("name", in: "stage \(index + 1)", &diagnostics), let text = diagnostics.string(node, "the stage name") {
            name = text
        }
        let startNode = map.required("start", in: "stage '\(name)'", &diagnostics)
        let endNode = map.required("end", in: "stage '\(name)'", &diagnostics)
        let start = startNode.flatMap { diagnostics.tokens($0, "the start of stage '\(name)'") }
        let end = endNode.flatMap { diagnostics.tokens($0, "the end of stage '\(name)'") }

        var entries: [RawWeight] = []
        var mixtureLocation = map.location
        switch (map.entry("mixture"), map.entry("mixture_file")) {
        case (let mixture?, nil):
            mixtureLocation = mixture.value.location
            if let weights = diagnostics.mapping(mixture.value, "the mixture of stage '\(name)' (dataset name -> weight)") {
                if weights.entries.isEmpty {
                    diagnostics.error(mixture.value.location, "the mixture of stage '\(name)' is empty; give at least one dataset a positive weight")
                }
                for entry in weights.entries {
                    let weight = diagnostics.weight(entry.value, "the weight of '\(entry.key)' in stage '\(name)'")
                    let dataset = folders[entry.key]
                    entries.append(RawWeight(name: entry.key, identity: dataset?.identity, writtenName: entry.key,
                                             folder: dataset?.folder ?? .relative(entry.key),
                                             weight: weight, location: entry.keyLocation))
                }
            }
        case (nil, let file?):
            mixtureLocation = file.value.location
            if let path = diagnostics.string(file.value, "'mixture_file'") {
                entries = readList(path, file.value.location, &diagnostics)
            }
        case (let mixture?, _?):
            diagnostics.error(mixture.keyLocation, "stage '\(name)' has both 'mixture' and 'mixture_file'; keep one")
        case (nil, nil):
            diagnostics.error(map.location, "stage '\(name)' has no mixture; add 'mixture:' (dataset name -> weight) or 'mixture_file:' (a dataset list)")
        }
        return RawStage(name: name, location: map.location,
                        start: start, startLocation: startNode?.location ?? map.location,
                        end: end, endLocation: endNode?.location ?? map.location,
                        mixtureLocation: mixtureLocation, entries: entries)
    }

    /// One entry of `datasets:`: a folder (`name: folder`), or `{folder: F, identity: ID}`: names of
    /// one identity are one dataset (one read position across stages, whatever folder each names),
    /// the first name written naming it. Without `identity:` a dataset's identity is its name.
    struct DatasetEntry {
        var folder: FolderReference
        var identity: String?
        var identityLocation: SourceLocation?
    }

    static let datasetKeys = ["folder", "identity"]

    static func readDataset(_ name: String, _ node: YAMLNode, _ diagnostics: inout Diagnostics) -> DatasetEntry? {
        func reference(_ path: String) -> FolderReference { path.hasPrefix("/") ? .asWritten(path) : .relative(path) }
        if case .mapping(let entries, let location) = node {
            let map = MappingReader(entries: entries, location: location)
            map.rejectUnknownKeys(allowed: datasetKeys, in: "the entry of dataset '\(name)'", &diagnostics)
            var entry = DatasetEntry(folder: .relative(name))
            if let folderNode = map.value("folder"), let path = diagnostics.string(folderNode, "the folder of dataset '\(name)'") {
                entry.folder = reference(path)
            }
            if let identityNode = map.value("identity"), let identity = diagnostics.string(identityNode, "the identity of dataset '\(name)'") {
                entry.identity = identity == name ? nil : identity
                entry.identityLocation = identityNode.location
            }
            return entry
        }
        guard let path = diagnostics.string(node, "the folder of dataset '\(name)' (a path, or {folder: F, identity: NAME})") else { return nil }
        return DatasetEntry(folder: reference(path))
    }

    static let shuffleKeys = ["span"]

    /// `shuffle: off`, or `shuffle: {span: N}` (rows per block, 2 to 2^24).
    static func readShuffle(_ node: YAMLNode, _ diagnostics: inout Diagnostics) -> ShuffleSpec {
        if case .scalar(let text, _, _) = node, !node.isNull {
            if text == "off" || text == "false" { return .off }
            diagnostics.error(node.location, "unknown shuffle '\(text)'; use 'off' or {span: N} (rows per shuffled block)")
            return .off
        }
        guard let map = diagnostics.mapping(node, "'shuffle'") else { return .off }
        map.rejectUnknownKeys(allowed: shuffleKeys, in: "'shuffle'", &diagnostics)
        guard let spanNode = map.required("span", in: "'shuffle'", &diagnostics),
              let span = diagnostics.integer(spanNode, "'shuffle.span' (rows per shuffled block)", in: 2...UInt64(CurriculumLimits.maxShuffleSpan)) else { return .off }
        return .rows(span: Int(span))
    }

    static func readPacking(_ node: YAMLNode, _ diagnostics: inout Diagnostics) -> PackingSpec {
        if case .scalar(let text, _, _) = node {
            switch text {
            case "concat": return .concat
            case "bestfit":
                diagnostics.error(node.location, "'bestfit' packing needs a pad token: write packing: {mode: bestfit, pad_token: N}")
            default:
                diagnostics.error(node.location, "unknown packing '\(text)'; use 'concat' or {mode: bestfit, pad_token: N, lookahead: N}")
            }
            return .concat
        }
        guard let map = diagnostics.mapping(node, "'packing'") else { return .concat }
        map.rejectUnknownKeys(allowed: packingKeys, in: "'packing'", &diagnostics)
        guard let modeNode = map.required("mode", in: "'packing'", &diagnostics),
              let mode = diagnostics.string(modeNode, "the packing mode") else { return .concat }
        switch mode {
        case "concat":
            return .concat
        case "bestfit":
            var pad: UInt32 = 0
            if let node = map.required("pad_token", in: "bestfit packing", &diagnostics),
               let value = diagnostics.integer(node, "'pad_token'", in: 0...UInt64(UInt32.max)) {
                pad = UInt32(value)
            }
            var lookahead = 64
            if let node = map.value("lookahead"), let value = diagnostics.integer(node, "'lookahead'", in: 1...65_536) {
                lookahead = Int(value)
            }
            return .bestfit(padToken: pad, lookahead: lookahead)
        default:
            diagnostics.error(modeNode.location, "unknown packing mode '\(mode)'; use 'concat' or 'bestfit'")
            return .concat
        }
    }
}
