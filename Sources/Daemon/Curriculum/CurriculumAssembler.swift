import Foundation

/// The checks common to every input form, turning a ``RawCurriculum`` into a ``Curriculum``:
/// contiguous stages holding at least one sequence, valid weights, one folder per dataset name,
/// and (with a data root) folders that exist and are not empty.
struct CurriculumAssembler {
    let raw: RawCurriculum
    let path: String
    let directory: String
    let dataRoot: String?

    func assemble(_ diagnostics: inout Diagnostics) -> Curriculum? {
        checkBoundaries(&diagnostics)
        if raw.stages.count > CurriculumLimits.maxStages {
            diagnostics.error(raw.stages[CurriculumLimits.maxStages].location, "the curriculum has \(raw.stages.count) stages, more than the protocol's limit of \(CurriculumLimits.maxStages); merge stages")
            return nil
        }
        var datasets: [DatasetSpec] = []
        var references: [FolderReference] = []
        var indexByName: [String: Int] = [:]
        var stages: [Stage] = []
        for stage in raw.stages {
            guard checkLimits(of: stage, &diagnostics) else { continue }
            var seen: [String: SourceLocation] = [:]
            var indices: [Int] = []
            for entry in stage.entries {
                if let first = seen[entry.name] {
                    diagnostics.error(entry.location, "dataset '\(entry.name)' appears twice in stage '\(stage.name)' (first at line \(first.line)); list each dataset once per stage")
                }
                seen[entry.name] = seen[entry.name] ?? entry.location
                if let index = indexByName[entry.name] {
                    if references[index] != entry.folder {
                        diagnostics.error(entry.location, "dataset '\(entry.name)' has folder \(describe(entry.folder)) here but \(describe(references[index])) at \(datasets[index].location); one name must mean one folder")
                    }
                    indices.append(index)
                } else {
                    indexByName[entry.name] = datasets.count
                    indices.append(datasets.count)
                    references.append(entry.folder)
                    datasets.append(DatasetSpec(name: entry.name, folder: resolve(entry.folder), location: entry.location))
                }
            }
            let units = weightUnits(stage, &diagnostics)
            guard let units, let start = stage.start, let end = stage.end, start < end else { continue }
            let total = units.reduce(0, +)
            let weights = zip(indices, units).map { dataset, u in
                StageWeight(dataset: dataset, share: Double(u) / Double(total), units: u)
            }
            stages.append(Stage(name: stage.name, startToken: start, endToken: end, weights: weights, location: stage.location))
        }
        if datasets.count > CurriculumLimits.maxDatasets {
            diagnostics.error(datasets[CurriculumLimits.maxDatasets].location, "the curriculum names \(datasets.count) datasets, more than the protocol's limit of \(CurriculumLimits.maxDatasets); merge datasets")
            return nil
        }
        if dataRoot != nil { checkFolders(datasets, &diagnostics) }
        guard diagnostics.isEmpty, let sequenceLength = raw.sequenceLength, !stages.isEmpty else { return nil }
        return Curriculum(sourcePath: path, format: raw.format, sequenceLength: sequenceLength, seed: raw.seed,
                          datasets: datasets, stages: stages, packing: raw.packing)
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

    func checkFolders(_ datasets: [DatasetSpec], _ diagnostics: inout Diagnostics) {
        for dataset in datasets {
            guard let folder = dataset.folder else { continue }
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) {
                diagnostics.error(dataset.location, "the folder of dataset '\(dataset.name)' (\(folder)) does not exist; create it or fix the data root")
            } else if !isDirectory.boolValue {
                diagnostics.error(dataset.location, "the folder of dataset '\(dataset.name)' (\(folder)) is not a folder")
            } else {
                let contents = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
                if !contents.contains(where: { !$0.hasPrefix(".") }) {
                    diagnostics.error(dataset.location, "the folder of dataset '\(dataset.name)' (\(folder)) is empty; put its shards there")
                }
            }
        }
    }

    func resolve(_ reference: FolderReference) -> String? {
        switch reference {
        case .asWritten(let p): return p
        case .unresolvable: return nil
        case .relative(let p): return (dataRoot ?? directory) + "/" + p
        }
    }

    func describe(_ reference: FolderReference) -> String {
        switch reference {
        case .asWritten(let p), .relative(let p), .unresolvable(let p): return "'\(p)'"
        }
    }
}

func gcd(_ a: UInt64, _ b: UInt64) -> UInt64 {
    var (a, b) = (a, b)
    while b != 0 { (a, b) = (b, a % b) }
    return a
}
