/// `--format megatron`: megatron-core's indexed dataset, `NAME.bin` (the tokens) and `NAME.idx`
/// (`MMIDIDX\0\0`, version 1, the dtype code, the sequence and document counts, `int32` sequence
/// lengths, `int64` byte pointers, `int64` document indices).
///
/// Each packed sequence is one item and one document, so `IndexedDataset[i]` is sequence `i` of the
/// chunk: `sequenceLength + 1` tokens, padding included (megatron-core reads no loss mask from the
/// data). With `--documents`, each source document is one item and one document. Token ids are
/// stored as `uint16` (dtype code 8) when the stream is 16-bit, else as `int32` (code 4), the dtypes
/// megatron-core's own preprocessing picks for vocabularies below and above 65,500.
final class MegatronSink: ExportSink {
    let fileNames: [String]
    private let bin: OutputFile
    private let idx: OutputFile
    private let width: Int
    private var lengths: [Int32] = []
    private var pointers: [Int64] = []
    private var summary = ExportFileSummary()

    static let magic: [UInt8] = Array("MMIDIDX".utf8) + [0, 0]

    init(_ context: ExportContext, name: String) throws(ExportError) {
        fileNames = ExportFormat.megatron.fileNames(name)
        width = context.width.bytes
        guard context.width.bytes == 2 || context.stream.vocabularySize <= UInt32(Int32.max) else {
            throw ExportError("--format megatron: a vocabulary of \(context.stream.vocabularySize) ids does not fit int32")
        }
        bin = try OutputFile(path: context.path(fileNames[0]))
        idx = try OutputFile(path: context.path(fileNames[1]))
    }

    func add(_ sequence: ExportedSequence) throws(ExportError) {
        try item(sequence.row)
        summary.sequences += 1
    }

    func add(_ document: ExportedDocument) throws(ExportError) {
        try item(document.tokens)
    }

    private func item(_ tokens: UnsafeRawBufferPointer) throws(ExportError) {
        let n = tokens.count / width
        guard let length = Int32(exactly: n) else {
            throw ExportError("--format megatron: an item of \(n) tokens is longer than megatron-core's int32 lengths")
        }
        pointers.append(Int64(bin.size))
        lengths.append(length)
        try bin.write(tokens)       // uint32 ids below 2^31 are the same bytes as int32
        summary.tokens += UInt64(n)
        summary.documents += 1
    }

    func commit() throws(ExportError) -> ExportFileSummary {
        let count = UInt64(lengths.count)
        try idx.write(Self.magic)
        try idx.write(littleEndian: [UInt64(1)])
        try idx.write([width == 2 ? 8 : 4])
        try idx.write(littleEndian: [count, count + 1])
        try idx.write(littleEndian: lengths)
        try idx.write(littleEndian: pointers)
        try idx.write(littleEndian: (0 ... Int64(count)).map { $0 })
        try bin.commit()
        try idx.commit()
        return summary
    }
}
