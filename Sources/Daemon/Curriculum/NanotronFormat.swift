/// Reads a nanotron training config as it is (e.g. SmolLM3's official files).
///
/// What tokenfeed takes from it:
/// - `data_stages[i]`: `name`, `start_training_step`, and `data.dataset`'s parallel lists
///   `dataset_read_path` (or `dataset_folder`) and `dataset_weights`;
/// - `tokens.sequence_length`, `tokens.micro_batch_size`, `tokens.batch_accumulation_per_replica`,
///   `tokens.train_steps` and `parallelism.dp`: one step is `dp × micro_batch_size ×
///   batch_accumulation_per_replica × sequence_length` tokens; stage `i` starts at token
///   `(start_training_step − 1) × step tokens`; `train_steps` ends the last stage;
/// - the seed: `general.seed`, else the first stage's `data.seed`, else 0.
///
/// A dataset is identified by its `dataset_folder` (the S3 path; nanotron keys datasets by it), or
/// by its read path when the config gives no folders: the same folder in two stages is one dataset,
/// whose read position carries over, even when its read path changes (SmolLM3's `stack-edu-HTML`).
/// Its name is the last component of the identity (`s3://…/stack-edu-Python/` → `stack-edu-Python`);
/// when two identities end alike, as many trailing components as make them distinct
/// (`mwiki/standard`). Its local folder comes from the read path: with a data root `ROOT/<r>`, `r`
/// being the read path's last components made distinct the same way (`ROOT/stack-v2-Python`);
/// without one the read path itself when that is local, and unresolved for `s3://` paths.
///
/// The rest of the file (checkpoints, model, optimizer, ...) is accepted unread, except
/// `general.consumed_train_samples` and `general.step`, which must be null (a run resumes from a
/// cursor); inside `data_stages` every key must be one nanotron defines for pre-tokenized datasets,
/// and every dataset option is honoured or refused (``NanotronDatasetOptions``); a stage's
/// `data.seed` must equal the run's seed.
enum NanotronFormat {
    static let stageKeys = ["name", "start_training_step", "data", "sequence_length"]
    static let dataKeys = ["dataset", "seed", "num_loading_workers"]
    static let datasetKeys = ["dataset_folder", "dataset_read_path", "dataset_weights", "dataset_max_tokens",
                              "token_size_in_bytes", "tokenizer_name", "vocab_size", "return_positions",
                              "use_old_brrr_dataloader", "pad_samples_to_global_batch_size", "shuffle_files",
                              "skip_in_stream"]

    static func read(_ root: MappingReader, dataRoot: String?, _ diagnostics: inout Diagnostics) -> RawCurriculum {
        // Batch geometry.
        var sequenceLength: UInt64?
        var stepTokens: UInt64?
        var trainSteps: UInt64?
        var trainStepsLocation = root.location
        var batch: NanotronBatch?
        let tokens = root.required("tokens", in: "the nanotron config", &diagnostics).flatMap { diagnostics.mapping($0, "'tokens'") }
        let parallelism = root.required("parallelism", in: "the nanotron config", &diagnostics).flatMap { diagnostics.mapping($0, "'parallelism'") }
        if let tokens {
            sequenceLength = tokens.required("sequence_length", in: "'tokens'", &diagnostics)
                .flatMap { diagnostics.integer($0, "'tokens.sequence_length'", in: 1...CurriculumLimits.maxSequenceLength) }
            let micro = tokens.required("micro_batch_size", in: "'tokens'", &diagnostics)
                .flatMap { diagnostics.integer($0, "'tokens.micro_batch_size'", in: 1...(1 << 20)) }
            let accumulation = tokens.required("batch_accumulation_per_replica", in: "'tokens'", &diagnostics)
                .flatMap { diagnostics.integer($0, "'tokens.batch_accumulation_per_replica'", in: 1...(1 << 20)) }
            if let node = tokens.required("train_steps", in: "'tokens'", &diagnostics) {
                trainStepsLocation = node.location
                trainSteps = diagnostics.integer(node, "'tokens.train_steps'", in: 1...(1 << 40))
            }
            let dp = parallelism?.required("dp", in: "'parallelism'", &diagnostics)
                .flatMap { diagnostics.integer($0, "'parallelism.dp'", in: 1...(1 << 24)) }
            if let sequenceLength, let micro, let accumulation, let dp {
                let (product, overflow) = (dp * micro).multipliedReportingOverflow(by: accumulation * sequenceLength)
                if overflow { diagnostics.error(tokens.location, "the global batch (dp × micro_batch_size × batch_accumulation_per_replica × sequence_length) does not fit in 64 bits") }
                else {
                    stepTokens = product
                    batch = NanotronBatch(dp: Int(dp), microBatchSize: Int(micro), accumulation: Int(accumulation))
                }
            }
        }

        var seed: UInt64?
        var seedSource = "general.seed"
        if let general = root.value("general"), case .mapping(let entries, let l) = general {
            let map = MappingReader(entries: entries, location: l)
            if let node = map.value("seed"), !node.isNull { seed = diagnostics.integer(node, "'general.seed'", in: 0...UInt64.max) }
            for key in ["consumed_train_samples", "step"] {
                if let node = map.value(key), !node.isNull {
                    diagnostics.error(node.location, "'general.\(key)' is not supported: tokenfeed starts a run at its first sequence and resumes from a cursor (docs/OPERATIONS.md); leave it null and resume the trainer with its tokenfeed cursor")
                }
            }
        }

        // Stages.
        var parsed: [ParsedStage] = []
        if let node = root.required("data_stages", in: "the nanotron config", &diagnostics),
           let items = diagnostics.sequence(node, "'data_stages'") {
            if items.isEmpty { diagnostics.error(node.location, "'data_stages' is empty; give at least one stage") }
            for (index, item) in items.enumerated() {
                guard let map = diagnostics.mapping(item, "a data stage") else { continue }
                if let stage = readStage(map, index: index, &diagnostics) {
                    if seed == nil, stage.seed != nil { seed = stage.seed; seedSource = "data.seed of stage '\(stage.name)'" }
                    else if let own = stage.seed, let seed, own != seed, let location = stage.seedLocation {
                        diagnostics.error(location, "stage '\(stage.name)' has data.seed \(own), but the run's seed is \(seed) (\(seedSource)); tokenfeed uses one seed for every stage: make them equal")
                    }
                    parsed.append(stage)
                }
            }
        }

        // Identities: the dataset folder (else the read path); names: the shortest distinct path
        // suffix of every identity; local folders: the shortest distinct suffix of every read path.
        let names = distinctNames(for: parsed.flatMap { $0.identities })
        let localNames = distinctNames(for: parsed.flatMap { $0.paths.map(\.path) })

        // Steps → tokens.
        var stages: [RawStage] = []
        for (index, stage) in parsed.enumerated() {
            var start: UInt64?
            if let step = stage.startStep {
                if index == 0 && step != 1 {
                    diagnostics.error(stage.startLocation, "the first stage starts at step \(step), leaving steps 1...\(step - 1) without a mixture; start it at step 1")
                } else if index > 0, let previous = parsed[index - 1].startStep, step <= previous {
                    diagnostics.error(stage.startLocation, "stage '\(stage.name)' starts at step \(step), not after the previous stage's start (step \(previous)): stages overlap; list stages in increasing start_training_step")
                } else if let trainSteps, step > trainSteps {
                    diagnostics.error(stage.startLocation, "stage '\(stage.name)' starts at step \(step), after the last step (tokens.train_steps = \(trainSteps)); start it at or before step \(trainSteps)")
                }
                if let stepTokens { start = stepStartToken(beforeStep: step, stepTokens: stepTokens, at: stage.startLocation, &diagnostics) }
            }
            var end: UInt64?
            var endLocation = trainStepsLocation
            if index + 1 < parsed.count {
                endLocation = parsed[index + 1].startLocation
                if let next = parsed[index + 1].startStep, let stepTokens {
                    end = stepStartToken(beforeStep: next, stepTokens: stepTokens, at: endLocation, quiet: true, &diagnostics)
                }
            } else if let trainSteps, let stepTokens {
                end = stepStartToken(beforeStep: trainSteps + 1, stepTokens: stepTokens, at: endLocation, &diagnostics)
            }
            let entries = stage.paths.enumerated().map { i, path in
                let identity = stage.identities[i]
                return RawWeight(name: names[identity] ?? identity, identity: identity, writtenName: path.path,
                                 folder: folder(path: path.path, name: localNames[path.path] ?? path.path, dataRoot: dataRoot),
                                 weight: i < stage.weights.count ? stage.weights[i] : nil,
                                 location: path.location)
            }
            var raw = RawStage(name: stage.name, location: stage.location, start: start, startLocation: stage.startLocation,
                               end: end, endLocation: endLocation, mixtureLocation: stage.mixtureLocation, entries: entries)
            raw.declaredFormat = stage.declaredFormat
            stages.append(raw)
        }
        var raw = RawCurriculum(format: .nanotron, sequenceLength: sequenceLength.map { Int($0) }, seed: seed ?? 0,
                                packing: .concat, stages: stages)
        raw.nanotronBatch = batch
        return raw
    }

    /// The tokens of the steps before `step` (1-based), `(step − 1) × stepTokens`, or nil after
    /// reporting that it exceeds ``CurriculumLimits/maxEndToken`` (`quiet`: the same place was
    /// already reported as a stage start).
    static func stepStartToken(beforeStep step: UInt64, stepTokens: UInt64, at location: SourceLocation, quiet: Bool = false,
                       _ diagnostics: inout Diagnostics) -> UInt64? {
        let (product, overflow) = (step - 1).multipliedReportingOverflow(by: stepTokens)
        guard overflow || product > CurriculumLimits.maxEndToken else { return product }
        if !quiet {
            diagnostics.error(location, "step \(step) starts at token \(overflow ? "beyond 2^64" : String(product)) (\(stepTokens) tokens per step), past tokenfeed's limit of \(CurriculumLimits.maxEndToken) (2^62) tokens; use fewer steps")
        }
        return nil
    }

    struct ParsedStage {
        var name: String
        var location: SourceLocation
        var startStep: UInt64?
        var startLocation: SourceLocation
        var seed: UInt64?
        var paths: [(path: String, location: SourceLocation)]
        /// Per path, the dataset's identity: its `dataset_folder` without trailing slashes (the
        /// read path when the config gives no folders).
        var identities: [String] = []
        var weights: [ExactDecimal?]
        var mixtureLocation: SourceLocation
        var seedLocation: SourceLocation?
        var declaredFormat = DeclaredShardFormat()
    }

    static func readStage(_ map: MappingReader, index: Int, _ diagnostics: inout Diagnostics) -> ParsedStage? {
        map.rejectUnknownKeys(allowed: stageKeys, in: "a data stage", &diagnostics)
        var name = "stage \(index + 1)"
        if let node = map.required("name", in: "data stage \(index + 1)", &diagnostics), let text = diagnostics.string(node, "the stage name") {
            name = text
        }
        let stepNode = map.required("start_training_step", in: "data stage '\(name)'", &diagnostics)
        let step = stepNode.flatMap { diagnostics.integer($0, "'start_training_step'", in: 1...(1 << 40)) }
        var stage = ParsedStage(name: name, location: map.location, startStep: step, startLocation: stepNode?.location ?? map.location,
                                seed: nil, paths: [], weights: [], mixtureLocation: map.location)
        if map.value("sequence_length").map({ !$0.isNull }) == true {
            diagnostics.error(map.entry("sequence_length")!.keyLocation, "a per-stage sequence_length is not supported; use tokens.sequence_length")
        }
        guard let dataNode = map.required("data", in: "data stage '\(name)'", &diagnostics),
              let data = diagnostics.mapping(dataNode, "'data'") else { return stage }
        data.rejectUnknownKeys(allowed: dataKeys, in: "the 'data' of a stage", &diagnostics)
        if let node = data.value("seed"), !node.isNull {
            stage.seed = diagnostics.integer(node, "'data.seed'", in: 0...UInt64.max)
            stage.seedLocation = node.location
        }
        guard let datasetNode = data.required("dataset", in: "the 'data' of stage '\(name)'", &diagnostics),
              let dataset = diagnostics.mapping(datasetNode, "'data.dataset'") else { return stage }
        dataset.rejectUnknownKeys(allowed: datasetKeys, in: "a nanotron dataset", &diagnostics)
        stage.mixtureLocation = datasetNode.location
        stage.declaredFormat = NanotronDatasetOptions.read(dataset, stage: name, &diagnostics)

        let pathEntry = dataset.entry("dataset_read_path") ?? dataset.entry("dataset_folder")
        guard let pathEntry else {
            diagnostics.error(datasetNode.location, "stage '\(name)' names no datasets; add 'dataset_read_path' or 'dataset_folder' (a list of dataset folders)")
            return stage
        }
        if let items = diagnostics.sequence(pathEntry.value, "'\(pathEntry.key)'") {
            for item in items {
                if let path = diagnostics.string(item, "a dataset path") {
                    stage.paths.append((path.trimmingSpaces, item.location))
                }
            }
            if items.isEmpty { diagnostics.error(pathEntry.value.location, "'\(pathEntry.key)' is empty; list at least one dataset") }
        }
        stage.identities = stage.paths.map { identity($0.path) }
        if let folderEntry = dataset.entry("dataset_folder"), folderEntry.key != pathEntry.key,
           let folders = diagnostics.sequence(folderEntry.value, "'dataset_folder'") {
            if folders.count != stage.paths.count {
                diagnostics.error(folderEntry.value.location, "'dataset_folder' has \(folders.count) entries but '\(pathEntry.key)' has \(stage.paths.count); the lists are parallel")
            } else {
                for (i, item) in folders.enumerated() {
                    if let folder = diagnostics.string(item, "a dataset folder") { stage.identities[i] = identity(folder.trimmingSpaces) }
                }
            }
        }
        guard let weightsEntry = dataset.entry("dataset_weights"), !weightsEntry.value.isNull else {
            diagnostics.error(datasetNode.location, "stage '\(name)' has no 'dataset_weights'; give one weight per dataset")
            return stage
        }
        if let items = diagnostics.sequence(weightsEntry.value, "'dataset_weights'") {
            stage.weights = items.enumerated().map { i, item in
                let label = i < stage.paths.count ? "the weight of '\(baseName(stage.paths[i].path))'" : "weight \(i + 1)"
                return diagnostics.weight(item, label)
            }
            if items.count != stage.paths.count {
                diagnostics.error(weightsEntry.value.location, "'dataset_weights' has \(items.count) entries but '\(pathEntry.key)' has \(stage.paths.count); give exactly one weight per dataset")
            }
        }
        return stage
    }

    /// For each distinct path, the shortest run of trailing components no other path ends with
    /// (all of its components when every shorter run clashes). Linear in the number of paths
    /// times their depth: each round counts the suffixes of one length in a dictionary.
    static func distinctNames(for paths: [String]) -> [String: String] {
        var unique: [String] = []
        var seen: Set<String> = []
        for path in paths where seen.insert(path).inserted { unique.append(path) }
        let components = unique.map { $0.split(separator: "/", omittingEmptySubsequences: true).map(String.init) }
        var result: [String: String] = [:]
        var open = Array(unique.indices)
        var count = 1
        while !open.isEmpty {
            var uses: [String: Int] = [:]
            for parts in components { uses[parts.suffix(count).joined(separator: "/"), default: 0] += 1 }
            var stillOpen: [Int] = []
            for i in open {
                let suffix = components[i].suffix(count).joined(separator: "/")
                if uses[suffix] == 1 || count >= components[i].count {
                    result[unique[i]] = suffix
                } else {
                    stillOpen.append(i)
                }
            }
            open = stillOpen
            count += 1
        }
        return result
    }

    /// A dataset folder as an identity: without trailing slashes, so `…/pes2o/` and `…/pes2o` are one.
    static func identity(_ folder: String) -> String {
        var text = Substring(folder)
        while text.count > 1, text.hasSuffix("/") { text = text.dropLast() }
        return String(text)
    }

    static func folder(path: String, name: String, dataRoot: String?) -> FolderReference {
        if dataRoot != nil { return .relative(name) }
        if path.contains("://") { return .unresolvable(path) }
        return .asWritten(path)
    }
}
