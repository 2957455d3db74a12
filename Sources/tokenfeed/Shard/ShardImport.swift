import ArgumentParser
import CommandLineSupport
import Foundation
import TokenfeedShards

/// `tokenfeed shard import --from datatrove|megatron SRC... --out DIR`
struct ShardImport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Convert datatrove (.ds + .ds.index) or Megatron (.bin + .idx) token files into shards.",
        discussion: """
            Each source file becomes one shard DIR/NAME.zst. A source may be a file (X.ds for datatrove; \
            X.bin, X.idx or the prefix X for Megatron) or a folder, whose matching files are all imported. \
            Import streams: memory stays near the read chunk plus a few frames, and frames are compressed on --jobs cores. \
            On a terminal, a progress line shows files, tokens, rate and ETA.
            """)

    enum Source: String, ExpressibleByArgument, CaseIterable { case datatrove, megatron }

    @Option(help: "Input format: \(Source.allCases.map(\.rawValue).joined(separator: " or ")).")
    var from: Source

    @Argument(help: "Source files or folders.")
    var sources: [String]

    @Option(help: "Output folder (created if missing).")
    var out: String

    @Option(help: "Tokens per zstd frame.")
    var tokensPerFrame: Int = ShardFormat.defaultTokensPerFrame

    @Option(help: "zstd compression level.")
    var level: Int32 = 3

    @Option(help: "Vocabulary size; every id must be below it (default: largest id seen + 1).")
    var vocabSize: UInt32?

    @Option(help: "The tokenizer's name, kept in the shards (datatrove: default from X.ds.metadata, which must agree).")
    var tokenizer: String?

    @Flag(help: "datatrove: import X.ds even when an X.ds.loss mask exists, dropping the mask (masks are not kept).")
    var ignoreLossMasks = false

    @Option(help: "Frames compressed at once (default: the CPUs this process may use — its affinity mask and cgroup CPU quota).")
    var jobs: Int = AvailableProcessors.count

    func validate() throws {
        guard jobs >= 1 else { throw ValidationError("--jobs must be at least 1") }
        guard tokensPerFrame > 0, tokensPerFrame <= ShardFormat.maxTokensPerFrame else {
            throw ValidationError("--tokens-per-frame must be within 1...\(ShardFormat.maxTokensPerFrame)")
        }
    }

    func run() throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var options = ImportOptions(tokensPerFrame: tokensPerFrame, level: level, vocabularySize: vocabSize)
        options.tokenizer = tokenizer
        options.ignoreLossMasks = ignoreLossMasks
        options.parallelism = jobs
        let inputs = try expandSources()
        let progress = ImportProgress()
        options.progress = progress
        let totalBytes = inputs.reduce(UInt64(0)) { $0 + sourceBytes($1) }
        let progressLine = ProgressLine.start(label: "import", total: totalBytes, unit: nil) {
            (progress.bytesRead, progress.tokensRead)
        }
        var failures = 0
        for input in inputs {
            do {
                let summary = switch from {
                case .datatrove: try DatatroveImporter.importFile(input, into: out, options: options)
                case .megatron: try MegatronImporter.importDataset(prefix: input, into: out, options: options)
                }
                let m = summary.metadata
                let ratio = Double(summary.rawBytes) / Double(max(m.compressedBytes, 1))
                var line = "\(summary.shard): \(m.tokenCount) tokens, \(m.documentCount) documents, \(m.frameCount) frames, \(String(format: "%.2f", ratio))× compression"
                if summary.emptyDocumentsSkipped > 0 { line += ", \(summary.emptyDocumentsSkipped) empty documents skipped" }
                progressLine?.clear()
                print(line)
            } catch {
                progressLine?.clear()
                failures += 1
                printError("error: \(error)")
            }
        }
        progressLine?.stop()
        // The folder's manifest covers every shard in it, imported now or before.
        do { try writeManifest(folder: out) } catch {
            failures += 1
            printError("error: \(error) (the folder's manifest was not written; fix it and run `tokenfeed shard index \(out)`)")
        }
        if failures > 0 { throw ExitCode(1) }
    }

    /// Bytes of tokens in source `input` (the `.ds` or `.bin` file), for the progress line's ETA.
    private func sourceBytes(_ input: String) -> UInt64 {
        let path = from == .datatrove ? input : input + ".bin"
        return ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.uint64Value ?? 0
    }

    private func expandSources() throws -> [String] {
        var inputs: [String] = []
        for source in sources {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory), isDirectory.boolValue {
                let suffix = from == .datatrove ? ".ds" : ".idx"
                let names = try FileManager.default.contentsOfDirectory(atPath: source).filter { $0.hasSuffix(suffix) }.sorted()
                if names.isEmpty { throw ValidationError("\(source): no *\(suffix) file in this folder") }
                inputs += names.map { name in
                    let path = source + "/" + name
                    return from == .datatrove ? path : String(path.dropLast(suffix.count))
                }
            } else if from == .megatron {
                inputs.append(source.hasSuffix(".bin") || source.hasSuffix(".idx") ? String(source.dropLast(4)) : source)
            } else {
                inputs.append(source)
            }
        }
        return inputs
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
