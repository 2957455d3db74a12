/// `--format datatrove`: `NAME.ds` (raw little-endian tokens), `NAME.ds.index` (cumulative `u64`
/// document ends) and `NAME.ds.metadata` (`tokenizer|token_size`, when the tokenizer is known).
///
/// A sequence is written whole — `sequenceLength + 1` tokens, padding included (datatrove has no
/// loss mask) — so datatrove's `DatatroveFolderDataset(seq_len = sequenceLength)`, which reads
/// window `i` of a file as its tokens `[i·(L+1), (i+1)·(L+1))`, reads sequence `i` of the chunk. The
/// index ends each piece (and the padding), so positions computed from it restart where the served
/// `cu_seqlens` do. A document (`--documents`) is one index entry.
final class DatatroveSink: ExportSink {
    let fileNames: [String]
    private let metadata: OutputFile?
    private let tokens: OutputFile
    private let index: OutputFile
    private let width: Int
    private var written: UInt64 = 0
    private var ends: [UInt64] = []
    private var summary = ExportFileSummary()

    init(_ context: ExportContext, name: String) throws(ExportError) {
        fileNames = ExportFormat.datatrove.fileNames(name).filter { context.tokenizer != nil || !$0.hasSuffix(".metadata") }
        width = context.width.bytes
        if let tokenizer = context.tokenizer {
            let file = try OutputFile(path: context.path(name + ".ds.metadata"))
            try file.write("\(tokenizer)|\(width)\n")
            metadata = file
        } else {
            metadata = nil
        }
        tokens = try OutputFile(path: context.path(name + ".ds"))
        index = try OutputFile(path: context.path(name + ".ds.index"))
        ends.reserveCapacity(4096)
    }

    func add(_ sequence: ExportedSequence) throws(ExportError) {
        try tokens.write(sequence.row)
        for piece in sequence.pieces {
            written += UInt64(piece.length)
            ends.append(written)
        }
        let rowTokens = UInt64(sequence.row.count / width)
        if sequence.record.paddedTokens > 0 {
            written += UInt64(sequence.record.paddedTokens)
            ends.append(written)
        }
        precondition(written == summary.tokens + rowTokens, "pieces and padding fill the row")
        summary.tokens += rowTokens
        summary.sequences += 1
        summary.documents += UInt64(sequence.pieces.count)
        if ends.count >= 4096 { try flushIndex() }
    }

    func add(_ document: ExportedDocument) throws(ExportError) {
        try tokens.write(document.tokens)
        written += UInt64(document.tokens.count / width)
        ends.append(written)
        summary.tokens = written
        summary.documents += 1
        if ends.count >= 4096 { try flushIndex() }
    }

    private func flushIndex() throws(ExportError) {
        try index.write(littleEndian: ends)
        ends.removeAll(keepingCapacity: true)
    }

    func commit() throws(ExportError) -> ExportFileSummary {
        try flushIndex()
        try metadata?.commit()
        try tokens.commit()
        try index.commit()
        return summary
    }
}
