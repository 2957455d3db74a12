import TokenfeedEngine
import TokenfeedShards

/// One packed sequence of the range, as a sink receives it.
struct ExportedSequence {
    var record: SequenceRecord
    /// The row: `sequenceLength + 1` tokens at the stream's width; the last `record.paddedTokens`
    /// are padding (bestfit packing).
    var row: UnsafeRawBufferPointer
    /// Where the row's tokens came from, in order.
    var pieces: ArraySlice<SequencePiece>
}

/// One whole document the range draws (`--documents`), as a sink receives it.
struct ExportedDocument {
    var dataset: Int
    var shard: Int
    var document: UInt64
    /// The epoch of the sequence that draws the document's first token.
    var epoch: UInt32
    /// That sequence.
    var firstSequence: UInt64
    /// The document's tokens at the stream's width.
    var tokens: UnsafeRawBufferPointer
}

/// What one committed output file (or group of files) holds, for the manifest.
struct ExportFileSummary {
    var sequences: UInt64 = 0
    var documents: UInt64 = 0
    var tokens: UInt64 = 0
}

/// Writes one chunk of an export in one format. A sink owns its files from creation to
/// ``commit()``: until then they exist only under `.partial` names, and a sink dropped without a
/// commit removes them.
protocol ExportSink: AnyObject {
    /// The files the sink commits, under their final names (relative to the output folder). The
    /// last one is renamed last: its presence means the chunk is complete.
    var fileNames: [String] { get }
    func add(_ sequence: ExportedSequence) throws(ExportError)
    func add(_ document: ExportedDocument) throws(ExportError)
    /// Completes the files and renames them into place, ``fileNames``' order.
    func commit() throws(ExportError) -> ExportFileSummary
}

/// The output formats (`--format`).
enum ExportFormat: String, CaseIterable {
    case shards, datatrove, megatron
    case jsonlProvenance = "jsonl-provenance"

    /// The files of chunk `name` in this format, the completion file last.
    func fileNames(_ name: String) -> [String] {
        switch self {
        case .shards: [name + "." + ShardFormat.fileExtension]
        case .datatrove: [name + ".ds.metadata", name + ".ds", name + ".ds.index"]
        case .megatron: [name + ".bin", name + ".idx"]
        case .jsonlProvenance: [name + ".jsonl"]
        }
    }
}

/// What every sink of one export shares.
struct ExportContext: Sendable {
    let stream: GlobalStream
    let folder: String
    let tokenizer: String?
    let tokensPerFrame: Int
    let level: Int32

    var width: TokenWidth { stream.tokenWidth }

    func path(_ name: String) -> String { folder.hasSuffix("/") ? folder + name : folder + "/" + name }

    /// A sink for chunk `name` in `format`.
    /// `compression`: threads a shard writer compresses frames on.
    func sink(_ format: ExportFormat, name: String, compression: Int) throws(ExportError) -> any ExportSink {
        switch format {
        case .shards: try ShardsSink(self, name: name, compression: compression)
        case .datatrove: try DatatroveSink(self, name: name)
        case .megatron: try MegatronSink(self, name: name)
        case .jsonlProvenance: try ProvenanceSink(self, name: name)
        }
    }
}
