import TokenfeedEngine
import TokenfeedSystem

/// `--format jsonl-provenance`: `NAME.jsonl`, one line per sequence — where its tokens came from,
/// not the tokens: an audit trail of the range. Keys, in this order: `sequence`, `stage`,
/// `dataset`, `epoch`, `tokens` (the row's length), `padded_tokens`, `cu_seqlens`, `provenance`
/// (`shard`, `document`, `offset`, `length` per piece, as `tokenfeed dump --json` prints them). With
/// `--documents`, one line per document: `dataset`, `shard`, `document`, `tokens`, `epoch`,
/// `first_sequence`.
final class ProvenanceSink: ExportSink {
    let fileNames: [String]
    private let file: OutputFile
    private let stream: GlobalStream
    private let width: Int
    private var summary = ExportFileSummary()

    init(_ context: ExportContext, name: String) throws(ExportError) {
        fileNames = ExportFormat.jsonlProvenance.fileNames(name)
        stream = context.stream
        width = context.width.bytes
        file = try OutputFile(path: context.path(fileNames[0]))
    }

    func add(_ sequence: ExportedSequence) throws(ExportError) {
        let record = sequence.record
        let d = Int(record.dataset)
        let rowTokens = sequence.row.count / width
        var line = "{\"sequence\":\(record.sequence),\"stage\":\(JSONText.string(stream.curriculum.stages[Int(record.stage)].name)),"
        line += "\"dataset\":\(JSONText.string(stream.curriculum.datasets[d].name)),\"epoch\":\(record.epoch),"
        line += "\"tokens\":\(rowTokens),\"padded_tokens\":\(record.paddedTokens),\"cu_seqlens\":[0"
        var end = 0
        for piece in sequence.pieces {
            end += Int(piece.length)
            line += ",\(end)"
        }
        if record.paddedTokens > 0 { line += ",\(rowTokens)" }
        line += "],\"provenance\":["
        for (k, piece) in sequence.pieces.enumerated() {
            if k > 0 { line += "," }
            line += "{\"shard\":\(JSONText.string(stream.shardName(dataset: d, shard: Int(piece.shard)))),"
            line += "\"document\":\(piece.document),\"offset\":\(piece.offset),\"length\":\(piece.length)}"
        }
        line += "]}\n"
        try file.write(line)
        summary.sequences += 1
        summary.documents += UInt64(sequence.pieces.count)
        summary.tokens += UInt64(rowTokens)
    }

    func add(_ document: ExportedDocument) throws(ExportError) {
        let n = document.tokens.count / width
        var line = "{\"dataset\":\(JSONText.string(stream.curriculum.datasets[document.dataset].name)),"
        line += "\"shard\":\(JSONText.string(stream.shardName(dataset: document.dataset, shard: document.shard))),"
        line += "\"document\":\(document.document),\"tokens\":\(n),\"epoch\":\(document.epoch),"
        line += "\"first_sequence\":\(document.firstSequence)}\n"
        try file.write(line)
        summary.documents += 1
        summary.tokens += UInt64(n)
    }

    func commit() throws(ExportError) -> ExportFileSummary {
        try file.commit()
        return summary
    }
}
