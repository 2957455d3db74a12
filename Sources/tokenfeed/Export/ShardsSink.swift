import TokenfeedShards

/// `--format shards`: one tokenfeed shard per chunk. A sequence is one document of its real tokens
/// (padding left out), so the folder, served with `bestfit` packing, look-ahead 1 and the same pad
/// id (the curriculum the export writes beside it), gives back the same rows, padding included; a
/// document (`--documents`) is one document.
final class ShardsSink: ExportSink {
    let fileNames: [String]
    private let writer: ShardWriter
    private let width: Int
    private var summary = ExportFileSummary()

    init(_ context: ExportContext, name: String, compression: Int) throws(ExportError) {
        fileNames = ExportFormat.shards.fileNames(name)
        width = context.width.bytes
        do {
            writer = try ShardWriter(path: context.path(fileNames[0]), tokenWidth: context.width,
                                     vocabularySize: context.stream.vocabularySize, tokensPerFrame: context.tokensPerFrame,
                                     level: context.level, tokenizer: context.tokenizer, parallelism: compression)
        } catch {
            throw ExportError(error.description)
        }
    }

    func add(_ sequence: ExportedSequence) throws(ExportError) {
        let real = sequence.row.count / width - Int(sequence.record.paddedTokens)
        try append(UnsafeRawBufferPointer(rebasing: sequence.row[..<(real * width)]))
        summary.sequences += 1
    }

    func add(_ document: ExportedDocument) throws(ExportError) {
        try append(document.tokens)
    }

    private func append(_ tokens: UnsafeRawBufferPointer) throws(ExportError) {
        do {
            try writer.write(tokens: tokens)
            try writer.endDocument()
        } catch {
            throw ExportError(error.description)
        }
        summary.documents += 1
        summary.tokens += UInt64(tokens.count / width)
    }

    func commit() throws(ExportError) -> ExportFileSummary {
        do { try writer.finish() } catch { throw ExportError(error.description) }
        return summary
    }
}
