import ArgumentParser
import CommandLineSupport
import Foundation
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedServer
import TokenfeedShards

/// `tokenfeed export`: a range of the curriculum's stream written out as a dataset.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a range of the curriculum's stream out as a dataset: tokenfeed shards, datatrove, Megatron, or a provenance trail.",
        discussion: """
            The range is a stage (--stage NAME), tokens (--tokens 8T..9T, either side may be empty) or steps \
            (--steps A..B with --world-size and --batch-size). Files hold at most --shard-tokens tokens each \
            (part-000000, part-000001, …), are written under .partial names and renamed when complete, and \
            MANIFEST.json lists the completed ones; --resume continues an interrupted export with the same \
            options, giving the same bytes.

            Packed sequences (the default) are exactly what trainers receive, in order: --format shards writes \
            one document per sequence and a curriculum (export.tokenfeed.yaml) that serves them back as the same \
            rows; datatrove and megatron write each sequence whole (padding included) so that \
            DatatroveFolderDataset(seq_len=L)[i] and megatron-core's IndexedDataset[i] are sequence i of a file; \
            jsonl-provenance writes where each sequence came from, without tokens.

            --documents writes instead the documents the range draws, each whole and once, in the order they \
            are first drawn — the recipe's "merged dataset", weighted by how much of each dataset the range \
            uses but not packed, so that another loader packs it its own way. A document belongs to the range \
            that draws its first token. See docs/EXPORT.md.
            """)

    @Argument(help: "The curriculum (nanotron YAML, tokenfeed YAML or dataset list).")
    var curriculum: String

    @Option(help: "Folder holding the dataset folders.")
    var dataRoot: String

    @Option(help: "Output folder (created; must be empty unless --resume).")
    var out: String

    @Option(help: "Export this stage, by name.")
    var stage: String?

    @Option(help: ArgumentHelp("Export the sequences covering these tokens of the curriculum.", valueName: "A..B"))
    var tokens: String?

    @Option(help: ArgumentHelp("Export these steps of --world-size × --batch-size sequences.", valueName: "A..B"))
    var steps: String?

    @Option(help: "With --steps: number of data-parallel ranks.")
    var worldSize: Int?

    @Option(help: "With --steps: sequences per rank per step.")
    var batchSize: Int?

    @Option(help: "Output format: \(ExportFormat.allCases.map(\.rawValue).joined(separator: ", ")).")
    var format: ExportFormat = .shards

    @Flag(help: "Write the documents the range draws (each whole, once) instead of packed sequences.")
    var documents = false

    @Option(help: "Tokens per output file, at most (a file holds at least one sequence).")
    var shardTokens: UInt64 = 1 << 28

    @Flag(help: "Continue the interrupted export in --out (same options).")
    var resume = false

    @Option(name: [.customLong("jobs"), .customLong("threads")],
            help: "Threads (default: the CPUs this process may use — its affinity mask and cgroup CPU quota).")
    var threads: Int = AvailableProcessors.count

    @Option(help: ArgumentHelp("Decompressed source frames kept, over all threads (K, M, G, KiB, MiB, GiB suffixes).", valueName: "bytes"))
    var frameCacheBytes = ByteCount(1 << 30)

    @Option(help: "--format shards: tokens per zstd frame.")
    var tokensPerFrame: Int = ShardFormat.defaultTokensPerFrame

    @Option(help: "--format shards: zstd compression level.")
    var level: Int32 = 3

    @Option(help: ArgumentHelp("With bestfit packing: keep per-shard row counts in this folder (as tokenfeed dump).", valueName: "dir"))
    var cacheDir: String?

    func validate() throws {
        guard [stage != nil, tokens != nil, steps != nil].filter({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --stage NAME, --tokens A..B and --steps A..B")
        }
        if steps != nil {
            guard let worldSize, let batchSize, worldSize > 0, batchSize > 0 else {
                throw ValidationError("--steps needs --world-size and --batch-size (positive)")
            }
        } else if worldSize != nil || batchSize != nil {
            throw ValidationError("--world-size and --batch-size go with --steps")
        }
        guard shardTokens > 0 else { throw ValidationError("--shard-tokens must be positive") }
        guard threads > 0 else { throw ValidationError("--threads must be positive") }
        guard frameCacheBytes.bytes > 0 else { throw ValidationError("--frame-cache-bytes: expected a positive byte count (e.g. 512M, 2G), got 0") }
        guard tokensPerFrame > 0, tokensPerFrame <= ShardFormat.maxTokensPerFrame else {
            throw ValidationError("--tokens-per-frame must be within 1...\(ShardFormat.maxTokensPerFrame)")
        }
    }

    func run() throws {
        do {
            try export()
        } catch {
            printError("tokenfeed export: \(error)")
            throw ExitCode(1)
        }
    }

    private func export() throws(ExportError) {
        let loaded: Curriculum
        do { loaded = try CurriculumLoader.load(path: curriculum, dataRoot: dataRoot) } catch {
            throw ExportError(error.description)
        }
        let stream: GlobalStream
        do {
            stream = try GlobalStream(curriculum: loaded, bestFitCacheDirectory: cacheDir,
                                      bestFitCacheReport: { printError("tokenfeed export: \($0)") })
        } catch {
            throw ExportError(error.description)
        }
        let request: ExportRange.Request =
            if let stage { .stage(stage) }
            else if let tokens { .tokens(tokens) }
            else { .steps(steps ?? "", worldSize: worldSize ?? 1, batchSize: batchSize ?? 1) }
        let range = try ExportRange.resolve(request, curriculum: loaded, plan: stream.plan)
        let perFile = max(1, shardTokens / UInt64(stream.rowTokens))
        let tokenizers = Set(stream.datasets.map(\.tokenizer))
        let tokenizer = tokenizers.count == 1 ? tokenizers.first! : nil
        let parameters = ExportManifest.Parameters(
            curriculum: curriculum, fingerprint: "0x" + String(StreamDescription(stream: stream).fingerprint, radix: 16), range: range.given,
            firstSequence: range.first, endSequence: range.end, sequenceLength: stream.sequenceLength,
            format: format.rawValue, documents: documents, sequencesPerFile: perFile, tokenWidth: stream.tokenWidth.bytes,
            tokenizer: tokenizer, tokensPerFrame: tokensPerFrame, level: level)

        let context = ExportContext(stream: stream, folder: out, tokenizer: tokenizer, tokensPerFrame: tokensPerFrame, level: level)
        let chunkCount = ExportRunner.chunkCount(range, sequencesPerFile: perFile)
        let manifestPath = context.path(ExportManifest.fileName)
        var manifest: ExportManifest
        if resume { try Self.removeLeftovers(in: out) }
        if resume && !Self.isEmptyOrAbsent(out) {
            manifest = try ExportManifest.read(manifestPath)
            if let difference = ExportManifest.difference(manifest.parameters, parameters) {
                throw ExportError("\(manifestPath): the export there was made with other options (\(difference)); "
                                  + "run it with the same options, or export into another folder")
            }
            try Self.removeIncomplete(in: out, manifest: manifest, format: format, chunkCount: chunkCount)
        } else {
            try Self.prepareEmptyFolder(out)
            manifest = ExportManifest(parameters: parameters)
            try ExportRunner.write(manifest, to: manifestPath)
        }
        let done = Set(manifest.groups.map(\.firstSequence))
        let todo = (0 ..< chunkCount).filter {
            !done.contains(ExportRunner.sequences(ofChunk: $0, range: range, sequencesPerFile: perFile).lowerBound)
        }
        let work = ExportRunner(context: context, format: format, documents: documents, range: range,
                                sequencesPerFile: perFile, chunks: todo, manifest: manifest)
        manifest = try work.run(threads: threads, frameCacheBytes: frameCacheBytes.bytes)
        manifest.complete = true
        try ExportRunner.write(manifest, to: manifestPath)
        if format == .shards {
            try Self.writeServingCurriculum(context: context, manifest: manifest)
        }
        let tokensOut = manifest.groups.reduce(UInt64(0)) { $0 + $1.tokens }
        let documentsOut = manifest.groups.reduce(UInt64(0)) { $0 + $1.documents }
        print("\(out): \(range.given): sequences \(range.first)..<\(range.end) (\(range.count)), "
              + "\(tokensOut) tokens, \(documentsOut) documents in \(manifest.groups.count) file group(s), format \(format.rawValue)"
              + (documents ? ", documents" : ""))
    }

    /// Before resuming: removes what a killed run can leave besides complete files — `.partial`
    /// files and the temporary files of an atomic write of the manifest or the serving curriculum
    /// (`NAME.tmp-…`). A run killed before its manifest existed leaves the folder empty, and starts anew.
    private static func removeLeftovers(in path: String) throws(ExportError) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        let temporaries = [ExportManifest.fileName + ".tmp-", servingCurriculumName + ".tmp-"]
        for name in names where name.hasSuffix(".partial") || temporaries.contains(where: name.hasPrefix) {
            guard unlink(path + "/" + name) == 0 else {
                throw ExportError("\(path)/\(name): cannot remove a leftover of the interrupted run: errno \(errno)")
            }
        }
    }

    static let servingCurriculumName = "export.tokenfeed.yaml"

    /// True when `path` does not exist or is an empty folder (an export killed before it began: `--resume` starts it).
    private static func isEmptyOrAbsent(_ path: String) -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).isEmpty
    }

    /// Creates `path`, or accepts it when it is an empty folder.
    private static func prepareEmptyFolder(_ path: String) throws(ExportError) {
        let files = FileManager.default
        var isFolder: ObjCBool = false
        if files.fileExists(atPath: path, isDirectory: &isFolder) {
            guard isFolder.boolValue else { throw ExportError("\(path): exists and is not a folder") }
            let contents = (try? files.contentsOfDirectory(atPath: path)) ?? []
            guard contents.isEmpty else {
                throw ExportError("\(path): the folder is not empty; give --resume to continue an interrupted export there, or choose another folder")
            }
            return
        }
        do { try files.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw ExportError("\(path): cannot create: \(error.localizedDescription)")
        }
    }

    /// Before resuming: removes every `.partial` file and the files of chunks the manifest does not
    /// list as complete (a run killed between renaming a group's files and recording it).
    private static func removeIncomplete(in path: String, manifest: ExportManifest, format: ExportFormat,
                                         chunkCount: Int) throws(ExportError) {
        let complete = Set(manifest.groups.flatMap(\.files))
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        let chunkFiles = Set((0 ..< chunkCount).flatMap { format.fileNames(ExportRunner.chunkName($0)) })
        for name in names where name.hasSuffix(".partial") || (chunkFiles.contains(name) && !complete.contains(name)) {
            guard unlink(path + "/" + name) == 0 else {
                throw ExportError("\(path)/\(name): cannot remove an incomplete file: errno \(errno)")
            }
        }
    }

    /// `--format shards`: the curriculum that serves the export back as the same rows —
    /// `bestfit` packing with look-ahead 1 (one document, one row) and the stream's pad id.
    private static func writeServingCurriculum(context: ExportContext, manifest: ExportManifest) throws(ExportError) {
        let stream = context.stream
        let folderName = URL(fileURLWithPath: context.folder).standardizedFileURL.lastPathComponent
        let sequences = manifest.groups.reduce(UInt64(0)) { $0 + $1.sequences }
        let pad = stream.padToken ?? 0
        var text = "# Written by tokenfeed export: serves \(folderName)'s \(sequences) sequences, in order, as the rows the\n"
        text += "# exported range held (each document is one row; padding restored by bestfit with look-ahead 1).\n"
        text += "# Use it with --data-root set to the folder that holds \(folderName).\n"
        text += "sequence_length: \(stream.sequenceLength)\n"
        text += "seed: 0\n"
        text += "packing: {mode: bestfit, pad_token: \(pad), lookahead: 1}\n"
        text += "stages:\n"
        text += "  - name: export\n"
        text += "    start: 0\n"
        text += "    end: \(sequences * UInt64(stream.sequenceLength))\n"
        text += "    mixture:\n"
        text += "      \(folderName): 1.0\n"
        do { try AtomicFile.write(Array(text.utf8), to: context.path(servingCurriculumName)) } catch {
            throw ExportError(error.description)
        }
    }
}

extension ExportFormat: ExpressibleByArgument {}
/// `--frame-cache-bytes 512M`: a byte count as the daemon's options write it.
extension ByteCount: ExpressibleByArgument {}
