import ArgumentParser
import Foundation
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedMixing
import TokenfeedServer
import TokenfeedShards
import TokenfeedSystem

/// `tokenfeed plan CURRICULUM [--data-root DIR] [--json]`: a dry run of a curriculum.
///
/// Validates the curriculum (every problem printed as `file:line:column: error: message`,
/// exit status 1), then shows each stage's token range and mixture grouped by category, and,
/// with a data root, each dataset's available tokens, the tokens drawn from it, the epochs that
/// means and the token at which it wraps to its second epoch.
struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a curriculum and show its stages, mixtures and epochs (docs/CURRICULUM.md).")

    @Argument(help: "The curriculum: tokenfeed format, nanotron config or dataset list.")
    var curriculum: String

    @Option(name: .customLong("data-root"), help: "Folder the dataset folders are in (nanotron: DIR/<name>).")
    var dataRoot: String?

    @Flag(help: "Print JSON: {sequence_length, seed, stages: [{name, start_token, end_token, datasets: [{name, weight, path}]}], identities: [{name, identity, path, folders}], warnings}.")
    var json = false

    @Option(help: "Shard files kept open at most (least recently used closed first).")
    var maxOpenShards: Int = 256

    @Option(help: "The order sequences are drawn in: quota (tokenfeed's, the default) or nanotron (nanotron's samples, bit for bit; docs/CURRICULUM.md, \"Orders\").")
    var order: StreamOrder = .quota

    @Option(help: ArgumentHelp("With --order nanotron: keep the stages' blend counts in this folder, so that the next plan, dump --offline or cursor check with the same folder does not compute them again (minutes for SmolLM3).",
                               valueName: "dir"))
    var cacheDir: String?

    /// Datasets drawn more often than this many epochs are flagged.
    static let manyEpochs = 4.0

    func run() throws {
        DescriptorCache.shared.setCapacity(max(1, maxOpenShards))
        var loaded: Curriculum
        do {
            loaded = try CurriculumLoader.load(path: curriculum, dataRoot: dataRoot)
            loaded.order = order
        } catch {
            for diagnostic in error.diagnostics { printError(diagnostic.description) }
            throw ExitCode(1)
        }
        for warning in loaded.warnings { printError(warning.description) }
        var folders: [DatasetFolder?] = Array(repeating: nil, count: loaded.datasets.count)
        if dataRoot != nil {
            var failed = false
            for (d, dataset) in loaded.datasets.enumerated() {
                guard let path = dataset.folder else { continue }
                do {
                    folders[d] = try DatasetFolder.open(path: path)
                } catch {
                    printError("\(dataset.location): error: dataset '\(dataset.name)': \(error.description)")
                    failed = true
                    continue
                }
                do { try folders[d].map { (folder) throws(EngineError) in try GlobalStream.checkServable(dataset: dataset.name, folder: folder) } } catch {
                    printError("\(dataset.location): error: \(error.description)")
                    failed = true
                }
            }
            if failed { throw ExitCode(1) }
            let opened = loaded.datasets.indices.compactMap { d in folders[d].map { (name: loaded.datasets[d].name, folder: $0) } }
            do { try GlobalStream.checkTokenizers(datasets: opened) } catch {
                printError("\(loaded.sourcePath): error: \(error.description)")
                throw ExitCode(1)
            }
            let all = folders.compactMap { $0 }
            do { if all.count == folders.count { try GlobalStream.checkDeclaredFormats(curriculum: loaded, datasets: all) } } catch {
                printError(error.description)
                throw ExitCode(1)
            }
            let unknown = GlobalStream.unknownTokenizers(datasets: opened)
            if !unknown.isEmpty {
                printError("\(loaded.sourcePath): warning: the tokenizer of \(unknown.joined(separator: ", ")) is unknown (shards that do not name one); "
                           + "check that it is \(opened.compactMap(\.folder.tokenizer).first ?? "")")
            }
        }
        let plan = StreamPlan(curriculum: loaded)
        var nanotron: NanotronOrder?
        if order == .nanotron {
            do {
                let blendCache = cacheDir.map { NanotronBlendStore(directory: $0, report: { printError("tokenfeed plan: \($0)") }) }
                let built = try GlobalStream.nanotronOrder(curriculum: loaded, countCache: blendCache)
                let all = folders.compactMap { $0 }
                if all.count == folders.count {
                    try GlobalStream.checkNanotronWindows(curriculum: loaded, order: built,
                                                          windows: all.map { NanotronWindows(folder: $0, rowTokens: loaded.sequenceLength + 1) },
                                                          datasets: all)
                }
                nanotron = built
            } catch {
                printError("error: \(error.description)")
                throw ExitCode(1)
            }
        }
        let usage: [DatasetUsage]
        do {
            usage = try loaded.datasets.indices.map { (d) throws(ShardError) in
                try DatasetUsage(dataset: d, curriculum: loaded, plan: plan, folder: folders[d])
            }
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        if json {
            print(renderJSON(loaded, plan: plan, usage: usage, nanotron: nanotron, folders: folders))
        } else {
            print(renderTable(loaded, plan: plan, usage: usage, nanotron: nanotron, folders: folders), terminator: "")
        }
    }

    // MARK: Human output

    private func renderTable(_ c: Curriculum, plan: StreamPlan, usage: [DatasetUsage], nanotron: NanotronOrder?,
                             folders: [DatasetFolder?]) -> String {
        let l = UInt64(c.sequenceLength)
        var out = "Curriculum \(c.sourcePath) (\(c.format.rawValue))\n"
        let packing: String
        switch c.packing {
        case .concat: packing = "concat"
        case .bestfit(let pad, let lookahead): packing = "bestfit (pad \(pad), lookahead \(lookahead))"
        }
        let shuffle: String
        switch c.shuffle {
        case .off: shuffle = "rows in stream order (no shuffle)"
        case .rows(let span): shuffle = "rows shuffled within blocks of \(grouped(UInt64(span))) (seeded)"
        }
        out += "  sequence length \(c.sequenceLength) · seed \(c.seed) · packing \(packing) · \(shuffle)\n"
        out += "  \(grouped(c.endToken)) tokens (\(human(c.endToken))) in \(grouped(plan.totalSequences)) sequences · \(c.datasets.count) datasets · fingerprint \(c.fingerprint)\n"
        out += "  " + orderLine(c) + "\n"
        let nameWidth = min(40, max(12, c.datasets.map(\.name.count).max() ?? 12))
        for (s, stage) in c.stages.enumerated() {
            let first = plan.firstSequence(ofStage: s), end = plan.firstSequence(ofStage: s + 1)
            out += "\nStage \(s + 1) \"\(stage.name)\": tokens \(grouped(stage.startToken)) → \(grouped(stage.endToken)) (\(human(stage.startToken)) → \(human(stage.endToken))), \(stage.weights.count) datasets, sequences \(grouped(first)) → \(grouped(end))\n"
            let drawn = nanotron?.drawn[s] ?? plan.counts(inStage: s)
            var byCategory: [DatasetCategory: [StageWeight]] = [:]
            for weight in stage.weights { byCategory[DatasetCategory(datasetName: c.datasets[weight.dataset].name), default: []].append(weight) }
            let categories = byCategory.keys.sorted { total(byCategory[$0]!) > total(byCategory[$1]!) || (total(byCategory[$0]!) == total(byCategory[$1]!) && $0.rawValue < $1.rawValue) }
            for category in categories {
                let weights = byCategory[category]!.sorted { $0.share > $1.share || ($0.share == $1.share && $0.dataset < $1.dataset) }
                out += "  " + pad(category.rawValue, nameWidth + 2) + " " + percent(total(weights)) + " " + bar(total(weights)) + "\n"
                for weight in weights {
                    let name = c.datasets[weight.dataset].name
                    var line = "    " + pad(name, nameWidth) + " " + percent(weight.share) + " " + bar(weight.share)
                    if usage[weight.dataset].available != nil {
                        line = pad(line, 4 + nameWidth + 10 + Self.barWidth) + "  draws \(human(drawn[weight.dataset] * l))"
                    }
                    out += line + "\n"
                }
            }
        }
        if let nanotron {
            out += renderNanotron(c, nanotron: nanotron, folders: folders, nameWidth: nameWidth)
            return out + renderIdentities(c, nameWidth: nameWidth)
        }
        out += "\nDatasets over the whole curriculum\n"
        out += "  " + pad("dataset", nameWidth) + "  " + lpad("drawn", 9) + "  " + lpad("available", 9) + "  " + lpad("epochs", 7) + "  wraps to epoch 2 at\n"
        for u in usage {
            let name = c.datasets[u.dataset].name
            var line = "  " + pad(name, nameWidth) + "  " + lpad(human(u.drawnTokens), 9)
            if let available = u.available {
                line += "  " + lpad(human(available), 9) + "  " + lpad(u.epochs.map { String(format: "%.2f", $0) } ?? "∞", 7)
                if let wrap = u.wrapToken { line += "  token \(grouped(wrap)) (\(human(wrap)))" } else { line += "  never" }
                if u.epochs.map({ $0 > Self.manyEpochs }) ?? true { line += "   ⚠ repeated \(u.epochs.map { String(format: "%.1f", $0) } ?? "∞")×" }
            } else if dataRoot != nil {
                line += "  " + lpad("-", 9) + "  " + lpad("-", 7) + "  ⚠ no local folder"
            } else {
                line += "  " + lpad("?", 9) + "  (give --data-root to see epochs)"
            }
            out += line + "\n"
        }
        return out + renderIdentities(c, nameWidth: nameWidth)
    }

    /// The line that says which order is in force.
    func orderLine(_ c: Curriculum) -> String {
        switch c.order {
        case .quota:
            return "order quota: each stage's quota schedule over exact weights, read positions carried over exactly, epochs when a dataset runs out (--order nanotron replays nanotron's samples)"
        case .nanotron:
            var line = "order nanotron: nanotron's greedy blend over the float64 weights, windows of \(c.sequenceLength + 1) tokens inside each shard file, nanotron's stage carry-over; no epochs"
            if let batch = c.nanotronBatch {
                line += "; nanotron's rank slice: world size \(batch.dp) (dp) × batch size \(batch.microBatchSize) (micro_batch_size), \(batch.accumulation) batch\(batch.accumulation == 1 ? "" : "es") per training step"
            }
            return line
        }
    }

    /// `--order nanotron`: where every dataset starts in each stage (nanotron's carry, and the
    /// samples really read before when they differ), and the windows each dataset must hold.
    private func renderNanotron(_ c: Curriculum, nanotron: NanotronOrder, folders: [DatasetFolder?], nameWidth: Int) -> String {
        var out = ""
        for s in 1 ..< max(1, c.stages.count) {
            out += "\nStage \(s + 1) \"\(c.stages[s].name)\" starts each dataset at sample (nanotron's carry over the previous stages' global index ranges)\n"
            for weight in c.stages[s].weights {
                let d = weight.dataset
                var line = "  " + pad(c.datasets[d].name, nameWidth) + "  " + lpad(grouped(nanotron.carry[s][d]), 15)
                let exact = nanotron.drawnBefore[s][d]
                if exact != nanotron.carry[s][d] {
                    line += "   ⚠ \(grouped(exact)) samples were read before: "
                    line += exact > nanotron.carry[s][d] ? "nanotron reads \(exact - nanotron.carry[s][d]) again" : "nanotron skips \(nanotron.carry[s][d] - exact)"
                }
                out += line + "\n"
            }
        }
        out += "\nDatasets over the whole curriculum (windows of \(c.sequenceLength + 1) tokens; nanotron has no epochs)\n"
        let needed = nanotron.samplesNeeded
        for (d, dataset) in c.datasets.enumerated() {
            var line = "  " + pad(dataset.name, nameWidth) + "  needs " + lpad(grouped(needed[d]), 15)
            if let folder = folders[d] {
                line += "  holds " + lpad(grouped(NanotronWindows(folder: folder, rowTokens: c.sequenceLength + 1).count), 15)
            } else if dataRoot == nil {
                line += "  (give --data-root to check the windows)"
            }
            out += line + "\n"
        }
        return out
    }

    /// Which local folder each dataset identity maps to.
    private func renderIdentities(_ c: Curriculum, nameWidth: Int) -> String {
        var out = "\nDataset identities → local folders (a dataset's read position carries over between stages, whatever folder a stage names)\n"
        for dataset in c.datasets {
            var line = "  " + pad(dataset.name, nameWidth)
            if dataset.identity != dataset.name { line += "  " + dataset.identity }
            line += "  ← " + dataset.folders.map { use in
                var text = use.path ?? "\(use.written) (not on this machine)"
                var notes: [String] = []
                if c.stages.count > 1 { notes.append((use.stages.count == 1 ? "stage " : "stages ") + use.stages.map { String($0 + 1) }.joined(separator: ", ")) }
                if dataset.folders.count > 1 && use.path != nil && use.path == dataset.folder { notes.append("read") }
                if !notes.isEmpty { text += " (" + notes.joined(separator: "; ") + ")" }
                return text
            }.joined(separator: ", ")
            out += line + "\n"
        }
        for warning in c.warnings { out += "  ⚠ \(warning.message)\n" }
        return out
    }

    static let barWidth = 30

    /// A bar of `barWidth` cells for a share in [0, 1], in eighths of a cell.
    func bar(_ share: Double) -> String {
        let eighths = Int((share * Double(Self.barWidth * 8)).rounded())
        var text = String(repeating: "█", count: eighths / 8)
        let partial = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"][eighths % 8]
        text += partial
        if text.isEmpty && share > 0 { text = "▏" }
        return text
    }

    func total(_ weights: [StageWeight]) -> Double { weights.reduce(0) { $0 + $1.share } }

    func percent(_ share: Double) -> String { lpad(String(format: "%.3f%%", share * 100), 8) }

    func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }
    func lpad(_ s: String, _ width: Int) -> String { s.count >= width ? s : String(repeating: " ", count: width - s.count) + s }

    // MARK: JSON

    private func renderJSON(_ c: Curriculum, plan: StreamPlan, usage: [DatasetUsage], nanotron: NanotronOrder?,
                            folders: [DatasetFolder?]) -> String {
        var shuffle = "null"
        if case .rows(let span) = c.shuffle { shuffle = "{\"span\":\(span)}" }
        var out = "{\"sequence_length\":\(c.sequenceLength),\"seed\":\(c.seed),\"fingerprint\":\(JSONText.string(c.fingerprint)),\"shuffle\":\(shuffle),"
        out += "\"order\":\(JSONText.string(c.order.rawValue)),"
        if let nanotron {
            // Per stage: each dataset's first sample (nanotron's carry), the samples read before it, and the samples the stage reads.
            out += "\"nanotron\":{\"stages\":["
            for s in c.stages.indices {
                if s > 0 { out += "," }
                out += "[" + c.stages[s].weights.map { w in
                    "{\"name\":\(JSONText.string(c.datasets[w.dataset].name)),\"first_sample\":\(nanotron.carry[s][w.dataset]),\"read_before\":\(nanotron.drawnBefore[s][w.dataset]),\"drawn\":\(nanotron.drawn[s][w.dataset])}"
                }.joined(separator: ",") + "]"
            }
            out += "],\"samples_needed\":[" + c.datasets.indices.map { d in
                let held = folders[d].map { String(NanotronWindows(folder: $0, rowTokens: c.sequenceLength + 1).count) } ?? "null"
                return "{\"name\":\(JSONText.string(c.datasets[d].name)),\"needed\":\(nanotron.samplesNeeded[d]),\"held\":\(held)}"
            }.joined(separator: ",") + "]},"
        }
        out += "\"stages\":["
        for (s, stage) in c.stages.enumerated() {
            if s > 0 { out += "," }
            out += "{\"name\":\(JSONText.string(stage.name)),\"start_token\":\(stage.startToken),\"end_token\":\(stage.endToken),"
            out += "\"first_sequence\":\(plan.firstSequence(ofStage: s)),\"datasets\":["
            for (i, weight) in stage.weights.enumerated() {
                if i > 0 { out += "," }
                let dataset = c.datasets[weight.dataset]
                out += "{\"name\":\(JSONText.string(dataset.name)),\"weight\":\(weight.share),\"path\":\(dataset.folder.map(JSONText.string) ?? "null")}"
            }
            out += "]}"
        }
        out += "],\"identities\":["
        for (d, dataset) in c.datasets.enumerated() {
            if d > 0 { out += "," }
            out += "{\"name\":\(JSONText.string(dataset.name)),\"identity\":\(JSONText.string(dataset.identity)),\"path\":\(dataset.folder.map(JSONText.string) ?? "null"),\"folders\":["
            out += dataset.folders.map { "{\"path\":\($0.path.map(JSONText.string) ?? "null"),\"written\":\(JSONText.string($0.written)),\"stages\":[\($0.stages.map(String.init).joined(separator: ","))]}" }.joined(separator: ",")
            out += "]}"
        }
        out += "],\"warnings\":[" + c.warnings.map { JSONText.string($0.description) }.joined(separator: ",") + "]"
        if dataRoot != nil {
            out += ",\"datasets\":["
            for (i, u) in usage.enumerated() {
                if i > 0 { out += "," }
                out += "{\"name\":\(JSONText.string(c.datasets[u.dataset].name)),\"drawn_tokens\":\(u.drawnTokens)"
                out += ",\"available_tokens\":\(u.available.map(String.init) ?? "null")"
                out += ",\"epochs\":\(u.epochs.map { "\($0)" } ?? "null")"
                out += ",\"wraps_at_token\":\(u.wrapToken.map(String.init) ?? "null")}"
            }
            out += "]"
        }
        return out + "}"
    }

    func printError(_ line: String) {
        FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
    }
}

/// What the curriculum draws from one dataset, against what it holds.
private struct DatasetUsage {
    let dataset: Int
    /// Tokens drawn over the whole curriculum (sequences × sequence length).
    let drawnTokens: UInt64
    /// Tokens in the dataset's folder, when it was opened.
    let available: UInt64?
    /// Drawn sequences ÷ sequences per epoch (nil when the data yields no whole sequence).
    let epochs: Double?
    /// The global token position where the dataset's second epoch begins, if it is reached.
    let wrapToken: UInt64?

    /// - Throws: `ShardError` when a shard's document-end page cannot be read (bestfit row counts).
    init(dataset: Int, curriculum: Curriculum, plan: StreamPlan, folder: DatasetFolder?) throws(ShardError) {
        self.dataset = dataset
        let drawn = plan.totalCounts[dataset]
        let l = UInt64(curriculum.sequenceLength)
        drawnTokens = drawn * l
        available = folder?.tokenCount
        guard let available else {
            epochs = nil
            wrapToken = nil
            return
        }
        // Rows in one epoch: concat windows of L + 1 tokens overlapping by one; bestfit rows as packed
        // (counted from the documents' lengths, metadata only; groups never cross shards, so every
        // epoch holds the same rows, in another order).
        let perEpoch: UInt64
        switch curriculum.packing {
        case .concat:
            perEpoch = EpochOrder.sequencesPerEpoch(tokens: available, sequenceLength: curriculum.sequenceLength)
        case .bestfit(_, let lookahead):
            if let folder {
                perEpoch = try PaddingReport(folder: folder, sequenceLength: curriculum.sequenceLength, lookahead: lookahead).rows
            } else {
                perEpoch = 0
            }
        }
        epochs = perEpoch == 0 ? nil : Double(drawn) / Double(perEpoch)
        wrapToken = perEpoch == 0 ? nil : plan.sequence(ofOrdinal: perEpoch, dataset: dataset).map { $0 * l }
    }
}

/// `8.14T`, `500M`, `12.3K`, `42`.
func human(_ value: UInt64) -> String {
    let units: [(Double, String)] = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")]
    let v = Double(value)
    for (scale, suffix) in units where v >= scale {
        let x = v / scale
        return (x >= 100 ? String(format: "%.0f", x) : x >= 10 ? String(format: "%.1f", x) : String(format: "%.2f", x)) + suffix
    }
    return String(value)
}
