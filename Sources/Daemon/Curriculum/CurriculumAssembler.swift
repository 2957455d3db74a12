import Foundation

/// The checks common to every input form, turning a ``RawCurriculum`` into a ``Curriculum``:
/// contiguous stages holding at least one sequence, valid weights, one dataset per identity (its
/// folders copies of one another), and (with a data root) folders that exist and are not empty.
struct CurriculumAssembler {
    let raw: RawCurriculum
    let path: String
    let directory: String
    let dataRoot: String?
    /// With a data root: report folders that do not exist or are empty.
    var requireFolders = true

    func assemble(_ diagnostics: inout Diagnostics) -> Curriculum? {
        checkBoundaries(&diagnostics)
        if raw.stages.count > CurriculumLimits.maxStages {
            diagnostics.error(raw.stages[CurriculumLimits.maxStages].location, "the curriculum has \(raw.stages.count) stages, more than the protocol's limit of \(CurriculumLimits.maxStages); merge stages")
            return nil
        }
        var datasets: [DatasetSpec] = []
        var uses: [[(reference: FolderReference, location: SourceLocation, stages: [Int])]] = []
        var indexByIdentity: [String: Int] = [:]
        var identityByName: [String: (identity: String, location: SourceLocation)] = [:]
        var stages: [Stage] = []
        for stage in raw.stages {
            guard checkLimits(of: stage, &diagnostics) else { continue }
            var seen: [String: RawWeight] = [:]
            var indices: [Int] = []
            for entry in stage.entries {
                if let first = seen[entry.identity] {
                    let also = first.writtenName == entry.writtenName ? "" : " (as '\(first.writtenName)', one identity with '\(entry.writtenName)')"
                    diagnostics.error(entry.location, "dataset '\(entry.name)' appears twice in stage '\(stage.name)' (first at line \(first.location.line)\(also)); list each dataset once per stage")
                }
                seen[entry.identity] = seen[entry.identity] ?? entry
                if let other = identityByName[entry.name], other.identity != entry.identity {
                    diagnostics.error(entry.location, "the name '\(entry.name)' means dataset \(entry.identity) here but \(other.identity) at \(other.location); one name must mean one dataset")
                }
                identityByName[entry.name] = identityByName[entry.name] ?? (entry.identity, entry.location)
                let index: Int
                if let known = indexByIdentity[entry.identity] {
                    index = known
                } else {
                    index = datasets.count
                    indexByIdentity[entry.identity] = index
                    uses.append([])
                    datasets.append(DatasetSpec(name: entry.name, identity: entry.identity, folder: nil, folders: [], location: entry.location))
                }
                indices.append(index)
                // Stages are numbered as they will be in the curriculum (skipped ones reported already).
                if let u = uses[index].firstIndex(where: { $0.reference == entry.folder }) {
                    if uses[index][u].stages.last != stages.count { uses[index][u].stages.append(stages.count) }
                } else {
                    uses[index].append((entry.folder, entry.location, [stages.count]))
                }
            }
            let units = weightUnits(stage, &diagnostics)
            guard let units, let start = stage.start, let end = stage.end, start < end else { continue }
            let total = units.reduce(0, +)
            let written = stage.entries.map { $0.weight.map { Double("\($0.significand)e\($0.exponent)") ?? 0 } ?? 0 }
            let weights = zip(zip(indices, units), written).map { pair, value in
                var weight = StageWeight(dataset: pair.0, share: Double(pair.1) / Double(total), units: pair.1)
                weight.written = value
                return weight
            }
            var assembled = Stage(name: stage.name, startToken: start, endToken: end, weights: weights, location: stage.location)
            assembled.declaredFormat = stage.declaredFormat
            stages.append(assembled)
        }
        if datasets.count > CurriculumLimits.maxDatasets {
            diagnostics.error(datasets[CurriculumLimits.maxDatasets].location, "the curriculum names \(datasets.count) datasets, more than the protocol's limit of \(CurriculumLimits.maxDatasets); merge datasets")
            return nil
        }
        for d in datasets.indices { chooseFolder(&datasets[d], uses: uses[d], &diagnostics) }
        if dataRoot != nil && requireFolders { checkFolders(datasets, &diagnostics) }
        guard diagnostics.isEmpty, let sequenceLength = raw.sequenceLength, !stages.isEmpty else { return nil }
        var curriculum = Curriculum(sourcePath: path, format: raw.format, sequenceLength: sequenceLength, seed: raw.seed,
                                    datasets: datasets, stages: stages, packing: raw.packing)
        curriculum.warnings = sharedFolderWarnings(datasets)
        curriculum.shuffle = raw.shuffle
        curriculum.nanotronBatch = raw.nanotronBatch
        return curriculum
    }

    /// Sets the dataset's folders (every one the curriculum names for its identity) and the one its
    /// shards are read from: the first that exists, else the first. Folders of one identity that
    /// exist must list the same files (names and sizes), or the same data would not continue where
    /// it stopped: reported at the later folder.
    func chooseFolder(_ dataset: inout DatasetSpec, uses: [(reference: FolderReference, location: SourceLocation, stages: [Int])],
                      _ diagnostics: inout Diagnostics) {
        dataset.folders = uses.map { DatasetFolderUse(path: resolve($0.reference), written: written($0.reference), stages: $0.stages) }
        let existing = dataset.folders.indices.filter { dataset.folders[$0].path.map(Self.isDirectory) ?? false }
        let read = existing.first ?? 0
        dataset.folder = dataset.folders.isEmpty ? nil : dataset.folders[read].path
        guard existing.count > 1, let readPath = dataset.folders[read].path else { return }
        let reference = Self.listing(readPath)
        for u in existing.dropFirst() {
            guard let other = dataset.folders[u].path, other != readPath else { continue }
            if let difference = Self.firstDifference(reference, Self.listing(other)) {
                diagnostics.error(uses[u].location, "dataset '\(dataset.name)' (identity \(dataset.identity)) is read from \(readPath) \(stageList(dataset.folders[read].stages)) "
                                  + "and from \(other) \(stageList(dataset.folders[u].stages)), but the folders hold different files (\(difference)); "
                                  + "one identity continues where it stopped from stage to stage, so its folders must be copies of the same data — copy them, or give the other data its own identity")
            }
        }
    }

    /// Warnings for datasets of different identities whose folders are the same folder (after
    /// resolving symbolic links): each keeps its own read position, so the same data is served twice.
    func sharedFolderWarnings(_ datasets: [DatasetSpec]) -> [CurriculumWarning] {
        var firstByFolder: [String: Int] = [:]
        var warnings: [CurriculumWarning] = []
        for (d, dataset) in datasets.enumerated() {
            guard let folder = dataset.folder else { continue }
            let key = Self.isDirectory(folder) ? URL(fileURLWithPath: folder).resolvingSymlinksInPath().standardizedFileURL.path : folder
            if let first = firstByFolder[key] {
                warnings.append(CurriculumWarning(dataset.location, "datasets '\(datasets[first].name)' and '\(dataset.name)' resolve to the same files (\(key)) under different identities "
                    + "(\(datasets[first].identity), \(dataset.identity)): each keeps its own read position, so the same data is served twice; "
                    + "if they are one dataset, give them one dataset_folder (nanotron) or one identity (tokenfeed: datasets: {NAME: {folder: F, identity: OTHER}})"))
            } else {
                firstByFolder[key] = d
            }
        }
        return warnings
    }

    func stageList(_ stages: [Int]) -> String {
        let numbers = stages.map { String($0 + 1) }
        return numbers.count == 1 ? "in stage \(numbers[0])" : "in stages \(numbers.joined(separator: ", "))"
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// Whether `folder` holds an entry whose name does not start with `.`: reads the listing only
    /// up to the first (a dataset folder of thousands of shards is listed once, when it is opened).
    static func hasVisibleEntry(_ folder: String) -> Bool {
        guard let directory = opendir(folder) else { return false }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let hidden = withUnsafeBytes(of: entry.pointee.d_name) { $0.first == UInt8(ascii: ".") }
            if !hidden { return true }
        }
        return false
    }

    /// The visible files of a folder with their sizes, by name.
    static func listing(_ folder: String) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where !name.hasPrefix(".") {
            let size = (try? FileManager.default.attributesOfItem(atPath: folder + "/" + name))?[.size] as? NSNumber
            out[name] = size?.uint64Value ?? 0
        }
        return out
    }

    /// The first file (by name) that one listing lacks or sizes differently, said for people.
    static func firstDifference(_ a: [String: UInt64], _ b: [String: UInt64]) -> String? {
        for name in Set(a.keys).union(b.keys).sorted() where a[name] != b[name] {
            switch (a[name], b[name]) {
            case (nil, _): return "'\(name)' is only in the second"
            case (_, nil): return "'\(name)' is only in the first"
            case (let x?, let y?): return "'\(name)' has \(x) bytes in the first, \(y) in the second"
            }
        }
        return nil
    }

    /// The protocol's limits on one stage (``CurriculumLimits``): its name's length, the number
    /// of its datasets and the length of their names. False, after reporting, when the stage lists
    /// too many datasets to look at them further (checked before any per-dataset work).
    func checkLimits(of stage: RawStage, _ diagnostics: inout Diagnostics) -> Bool {
        let nameBytes = stage.name.utf8.count
        if nameBytes > CurriculumLimits.maxStageNameBytes {
            diagnostics.error(stage.location, "the name of stage '\(stage.name.prefix(40))…' is \(nameBytes) bytes long, more than the protocol's limit of \(CurriculumLimits.maxStageNameBytes) UTF-8 bytes; shorten it")
        }
        guard stage.entries.count <= CurriculumLimits.maxDatasets else {
            diagnostics.error(stage.mixtureLocation, "stage '\(stage.name.prefix(40))' lists \(stage.entries.count) datasets, more than the protocol's limit of \(CurriculumLimits.maxDatasets) per stage; merge datasets")
            return false
        }
        for entry in stage.entries where entry.name.utf8.count > CurriculumLimits.maxDatasetNameBytes {
            diagnostics.error(entry.location, "the dataset name '\(entry.name.prefix(40))…' is \(entry.name.utf8.count) bytes long, more than the protocol's limit of \(CurriculumLimits.maxDatasetNameBytes) UTF-8 bytes; shorten it")
        }
        return true
    }

    /// Stages must tile [0, end): first at 0, each starting where the previous ends, each
    /// holding at least one sequence.
    func checkBoundaries(_ diagnostics: inout Diagnostics) {
        let nanotron = raw.format == .nanotron  // step-level checks were already made
        for (index, stage) in raw.stages.enumerated() {
            if !nanotron, index == 0, let start = stage.start, start != 0 {
                diagnostics.error(stage.startLocation, "the first stage starts at token \(start), leaving tokens 0..<\(start) without a mixture (a gap); start it at 0")
            }
            if !nanotron, index > 0, let start = stage.start, let previous = raw.stages[index - 1].end {
                if start < previous {
                    diagnostics.error(stage.startLocation, "stage '\(stage.name)' starts at token \(start), before the previous stage ends (\(previous)): stages overlap; start it at \(previous)")
                } else if start > previous {
                    diagnostics.error(stage.startLocation, "stage '\(stage.name)' starts at token \(start) but the previous stage ends at \(previous), leaving a gap; start it at \(previous)")
                }
            }
            guard let start = stage.start, let end = stage.end else { continue }
            if end > CurriculumLimits.maxEndToken {
                diagnostics.error(stage.endLocation, "stage '\(stage.name.prefix(40))' ends at token \(end), past tokenfeed's limit of \(CurriculumLimits.maxEndToken) (2^62) tokens; end it earlier")
                continue
            }
            if end <= start {
                if !nanotron {
                    diagnostics.error(stage.endLocation, "stage '\(stage.name)' ends at token \(end), not after its start (\(start)); the end must be greater than the start")
                }
            } else if let length = raw.sequenceLength {
                let l = UInt64(length)
                let first = start / l + (start % l == 0 ? 0 : 1)
                let last = end / l + (end % l == 0 ? 0 : 1)
                if first == last {
                    diagnostics.error(stage.endLocation, "stage '\(stage.name)' (tokens \(start)..<\(end)) holds no sequence of \(length) tokens; make it at least \(length) tokens long")
                }
            }
        }
    }

    /// The stage's weights as the smallest integers with the same ratios, or nil after reporting.
    func weightUnits(_ stage: RawStage, _ diagnostics: inout Diagnostics) -> [UInt64]? {
        guard !stage.entries.isEmpty else { return nil }
        let weights = stage.entries.map(\.weight)
        guard weights.allSatisfy({ $0 != nil }) else { return nil }
        let decimals = weights.map { $0! }
        let positive = decimals.filter { $0.significand > 0 }
        guard let minExponent = positive.map(\.exponent).min() else {
            diagnostics.error(stage.mixtureLocation, "the weights of stage '\(stage.name)' sum to zero; give at least one dataset a positive weight")
            return nil
        }
        var units: [UInt64] = []
        for (entry, decimal) in zip(stage.entries, decimals) {
            guard decimal.significand > 0 else { units.append(0); continue }
            guard let u = decimal.scaled(byPowerOfTen: -minExponent) else {
                diagnostics.error(entry.location, "the weight of '\(entry.name)' is too large next to the smallest weight of stage '\(stage.name)' (their ratio exceeds 64 bits); use fewer decimal places")
                return nil
            }
            units.append(u)
        }
        var divisor: UInt64 = 0
        for u in units where u > 0 { divisor = gcd(divisor, u) }
        units = units.map { $0 / divisor }
        var total: UInt64 = 0
        for u in units {
            let (sum, overflow) = total.addingReportingOverflow(u)
            if overflow { total = .max; break }
            total = sum
        }
        if total > Curriculum.maximumWeightDenominator {
            diagnostics.error(stage.mixtureLocation, "the weights of stage '\(stage.name)' need a common denominator of \(total == .max ? "more than 2^64" : String(total)), more than tokenfeed's limit of \(Curriculum.maximumWeightDenominator); round them to fewer decimal places")
            return nil
        }
        return units
    }

    /// Reports dataset folders that are missing, not folders, or empty, in dataset order. When
    /// several are missing, a summary comes first ("3 of 72 dataset folders found under DIR; it
    /// holds: …"); each missing folder names the closest existing one ("did you mean …?"); and when
    /// none was found only the first few get a line of their own, the rest one line together — a
    /// wrong data root gives a few lines, not one per dataset.
    func checkFolders(_ datasets: [DatasetSpec], _ diagnostics: inout Diagnostics) {
        let checked = datasets.filter { $0.folder != nil }
        let missing = checked.filter { !FileManager.default.fileExists(atPath: $0.folder ?? "") }
        if missing.count >= 2 {
            diagnostics.error(missing[0].location, Self.missingFoldersSummary(found: checked.count - missing.count, of: checked.count,
                                                                             parents: missing.map { Self.parent(of: $0.folder ?? "") }))
        }
        let shownMissing = missing.count == checked.count ? Self.missingFoldersShownWhenNoneFound : missing.count
        var reportedMissing = 0
        for dataset in checked {
            guard let folder = dataset.folder else { continue }
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) {
                reportedMissing += 1
                guard reportedMissing <= shownMissing else { continue }
                var message = "the folder of dataset '\(dataset.name)' (\(folder)) does not exist"
                if let near = Self.closestEntry(to: Self.lastComponent(of: folder), in: Self.parent(of: folder)) {
                    message += "; did you mean '\(near)'?"
                } else {
                    message += "; create it or fix the data root"
                }
                diagnostics.error(dataset.location, message)
            } else if !isDirectory.boolValue {
                diagnostics.error(dataset.location, "the folder of dataset '\(dataset.name)' (\(folder)) is not a folder")
            } else {
                if !Self.hasVisibleEntry(folder) {
                    diagnostics.error(dataset.location, "the folder of dataset '\(dataset.name)' (\(folder)) is empty; put its shards there")
                }
            }
        }
        if missing.count > shownMissing {
            let rest = missing.dropFirst(shownMissing)
            diagnostics.error(rest[rest.startIndex].location,
                              "\(rest.count) more dataset folders do not exist: \(rest.map(\.name).joined(separator: ", "))")
        }
    }

    /// Missing folders listed one per line when none was found at all (a wrong data root).
    static let missingFoldersShownWhenNoneFound = 3

    /// "0 of 72 dataset folders found under DIR; it holds: a, b, c" (or "it does not exist").
    static func missingFoldersSummary(found: Int, of total: Int, parents: [String]) -> String {
        let distinct = Array(Set(parents)).sorted()
        guard distinct.count == 1, let root = distinct.first else {
            return "\(found) of \(total) dataset folders found; \(total - found) are missing (below)"
        }
        var summary = "\(found) of \(total) dataset folders found under \(root)"
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory) || !isDirectory.boolValue {
            return summary + "; \(root) does not exist (check --data-root or the config's data_root)"
        }
        let entries = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        if entries.isEmpty { return summary + "; \(root) is empty" }
        let shown = entries.prefix(8).joined(separator: ", ")
        summary += "; it holds: \(shown)" + (entries.count > 8 ? ", … (\(entries.count) entries)" : "")
        return summary
    }

    /// The entry of folder `directory` closest to `name` (by edit distance, ignoring case), if it is close.
    static func closestEntry(to name: String, in directory: String) -> String? {
        let entries = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { !$0.hasPrefix(".") }
        return closestCandidate(to: name, among: entries)
    }

    static func parent(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }

    static func lastComponent(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return String(trimmed) }
        return String(trimmed[trimmed.index(after: slash)...])
    }

    func resolve(_ reference: FolderReference) -> String? {
        switch reference {
        case .asWritten(let p): return p
        case .unresolvable: return nil
        case .relative(let p): return (dataRoot ?? directory) + "/" + p
        }
    }

    func written(_ reference: FolderReference) -> String {
        switch reference {
        case .asWritten(let p), .relative(let p), .unresolvable(let p): return p
        }
    }
}

func gcd(_ a: UInt64, _ b: UInt64) -> UInt64 {
    var (a, b) = (a, b)
    while b != 0 { (a, b) = (b, a % b) }
    return a
}
