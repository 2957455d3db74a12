import Dispatch
import Synchronization
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedShards
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes an export's chunks on all cores.
///
/// The range is cut into chunks of `sequencesPerFile` consecutive sequences; chunk `c` becomes the
/// file group `part-NNNNNN` (c in six or more digits). A chunk's bytes depend only on the stream and
/// the chunk, never on the number of threads or on which chunks were written before, so a resumed
/// export writes the same bytes as an uninterrupted one. Each thread plans and copies its own
/// sequences (a `BatchAssembler` over one-sequence steps, frames decompressed on that thread), so
/// memory is a few frames and one chunk's index per thread.
final class ExportRunner: Sendable {
    let context: ExportContext
    let format: ExportFormat
    let documents: Bool
    let range: ExportRange
    let sequencesPerFile: UInt64
    private let chunks: [Int]
    private let manifest: LockedValue<ExportManifest>
    private let manifestPath: String
    private let nextChunk = Atomic<Int>(0)
    private let failure = LockedValue<ExportError?>(nil)
    private let failed = Atomic<Bool>(false)
    /// Progress: sequences done (of the chunks in this run) and tokens written.
    private let sequencesDone = Atomic<UInt64>(0)
    private let tokensWritten = Atomic<UInt64>(0)

    /// - Parameters:
    ///   - chunks: the chunks still to write (all of them, or those a resumed export lacks).
    ///   - manifest: the manifest so far; each completed chunk is added and the file rewritten.
    init(context: ExportContext, format: ExportFormat, documents: Bool, range: ExportRange, sequencesPerFile: UInt64,
         chunks: [Int], manifest: ExportManifest) {
        self.context = context
        self.format = format
        self.documents = documents
        self.range = range
        self.sequencesPerFile = sequencesPerFile
        self.chunks = chunks
        self.manifest = LockedValue(manifest)
        self.manifestPath = context.path(ExportManifest.fileName)
    }

    /// The number of chunks the range is cut into.
    static func chunkCount(_ range: ExportRange, sequencesPerFile: UInt64) -> Int {
        Int((range.count + sequencesPerFile - 1) / sequencesPerFile)
    }

    /// The name of chunk `c`'s file group.
    static func chunkName(_ c: Int) -> String {
        let digits = String(c)
        return "part-" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    /// The global sequences chunk `c` holds.
    func sequences(ofChunk c: Int) -> Range<UInt64> {
        Self.sequences(ofChunk: c, range: range, sequencesPerFile: sequencesPerFile)
    }

    static func sequences(ofChunk c: Int, range: ExportRange, sequencesPerFile: UInt64) -> Range<UInt64> {
        let lo = range.first + UInt64(c) * sequencesPerFile
        return lo ..< min(range.end, lo + sequencesPerFile)
    }

    /// Writes every chunk on `threads` threads, reporting progress on stderr when it is a terminal.
    /// - Returns: the manifest with every chunk listed (not yet marked complete).
    /// - Throws: the first `ExportError` a thread met; the other threads stop at their next chunk.
    func run(threads: Int, frameCacheBytes: Int) throws(ExportError) -> ExportManifest {
        let reporter = startProgress()
        let workers = max(1, min(threads, chunks.count))
        // Each worker keeps the frames its rows read: one or two a dataset (rows come from every
        // dataset of the stage in turn), within its share of the budget.
        let stream = context.stream
        let frameBytes = max(1, stream.datasets.lazy.flatMap(\.shards).map { Preloader.largestFrameBytes($0) }.max() ?? 1)
        let frames = max(4, min(2 * stream.datasets.count + 2, frameCacheBytes / workers / frameBytes))
        // Fewer parts than threads: the shard writers compress on the spare cores.
        let compression = max(1, threads / workers)
        // Workers run on threads of their own, not on Dispatch's pool: the shard writers compress
        // on the pool and a worker waits for its writer's batch, so workers holding the pool's
        // threads would leave the compression queued behind them (two threads ran like one).
        let finished = DispatchGroup()
        for _ in 0 ..< workers {
            finished.enter()
            DedicatedThread.run { [self] in
                work(frames: frames, compression: compression)
                finished.leave()
            }
        }
        finished.wait()
        reporter?.stop()
        if let error = failure.withLock({ $0 }) { throw error }
        return manifest.withLock { $0 }
    }

    private func work(frames frameCount: Int, compression: Int) {
        let stream = context.stream
        var assembler = BatchAssembler(stream: stream, slice: RankSlice(rank: 0, worldSize: 1, batchSize: 1))
        let frames = DirectFrameProvider(stream: stream, capacity: frameCount)
        let row = UnsafeMutableRawBufferPointer.allocate(byteCount: assembler.tokenBlockBytes, alignment: 64)
        var document = DocumentBuffer()
        defer { row.deallocate(); document.deallocate() }
        while !failed.load(ordering: .relaxed) {
            let k = nextChunk.wrappingAdd(1, ordering: .relaxed).oldValue
            guard k < chunks.count else { return }
            do {
                try write(chunk: chunks[k], assembler: &assembler, frames: frames, row: row, document: &document,
                          compression: compression)
            } catch {
                failure.withLock { if $0 == nil { $0 = error } }
                failed.store(true, ordering: .relaxed)
            }
        }
    }

    private func write(chunk c: Int, assembler: inout BatchAssembler, frames: DirectFrameProvider,
                       row: UnsafeMutableRawBufferPointer, document: inout DocumentBuffer, compression: Int) throws(ExportError) {
        let name = Self.chunkName(c)
        let sink = try context.sink(format, name: name, compression: compression)
        let stream = context.stream
        let span = sequences(ofChunk: c)
        let inputTokens = stream.sequenceLength
        let concat = stream.curriculum.packing == .concat
        for i in span {
            if failed.load(ordering: .relaxed) { throw ExportError("stopped") }
            if documents {
                do { try assembler.plan(step: i) } catch { throw ExportError(error.description) }
                let record = assembler.records[0]
                let d = Int(record.dataset)
                // With concat packing a row may cross into the next epoch: a piece's epoch is that of
                // its position in the dataset's stream (the row's ordinal · L + its place in the row).
                let rowStart = concat ? stream.plan.source(ofSequence: i).ordinal * UInt64(inputTokens) : 0
                let epochTokens = stream.datasets[d].tokenCount
                var position = 0
                for piece in assembler.pieces {
                    defer { position += Int(piece.length) }
                    // A document belongs to the sequence that draws its first token: with concat
                    // packing, as an input (row positions 0..<L; position L is the next row's first
                    // input too), with bestfit, wherever it is placed.
                    let documents = stream.datasets[d].shards[Int(piece.shard)]
                    let start: UInt64, end: UInt64
                    do {
                        start = try documents.documentStart(Int(piece.document))
                        guard piece.offset == start, !concat || position < inputTokens else { continue }
                        end = try documents.documentEnd(Int(piece.document))
                    } catch { throw ExportError(error.description) }
                    let tokens = document.reserve(tokens: Int(end - start), width: stream.tokenWidth.bytes)
                    do {
                        try assembler.copyTokens(dataset: d, shard: Int(piece.shard), range: start ..< end, to: tokens,
                                                 at: 0, frames: frames)
                    } catch {
                        throw ExportError(error.description)
                    }
                    try sink.add(ExportedDocument(dataset: d, shard: Int(piece.shard), document: piece.document,
                                                  epoch: concat ? UInt32(truncatingIfNeeded: (rowStart + UInt64(position)) / epochTokens) : record.epoch,
                                                  firstSequence: i, tokens: UnsafeRawBufferPointer(tokens)))
                    tokensWritten.add(end - start, ordering: .relaxed)
                }
            } else {
                do { try assembler.assemble(step: i, into: row, frames: frames) } catch {
                    throw ExportError(error.description)
                }
                try sink.add(ExportedSequence(record: assembler.records[0], row: UnsafeRawBufferPointer(row),
                                              pieces: assembler.pieces[...]))
                tokensWritten.add(UInt64(stream.rowTokens), ordering: .relaxed)
            }
            sequencesDone.add(1, ordering: .relaxed)
        }
        let summary = try sink.commit()
        let group = ExportManifest.FileGroup(files: sink.fileNames, firstSequence: span.lowerBound, endSequence: span.upperBound,
                                             sequences: UInt64(span.count), documents: summary.documents, tokens: summary.tokens)
        try manifest.withLock { (m) throws(ExportError) in
            m.groups.append(group)
            m.groups.sort { $0.firstSequence < $1.firstSequence }
            try Self.write(m, to: manifestPath)
        }
    }

    /// Writes `manifest` atomically.
    static func write(_ manifest: ExportManifest, to path: String) throws(ExportError) {
        do { try AtomicFile.write(manifest.encoded(), to: path) } catch { throw ExportError(error.description) }
    }

    // MARK: - Progress

    private func startProgress() -> ProgressLine? {
        let total = chunks.reduce(UInt64(0)) { $0 + UInt64(sequences(ofChunk: $1).count) }
        return ProgressLine.start(label: "export", total: total, unit: nil) { [self] in
            (sequencesDone.load(ordering: .relaxed), tokensWritten.load(ordering: .relaxed))
        }
    }
}

/// A growable token buffer for one document.
struct DocumentBuffer {
    private var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 64)

    mutating func reserve(tokens: Int, width: Int) -> UnsafeMutableRawBufferPointer {
        let bytes = tokens * width
        if buffer.count < bytes {
            buffer.deallocate()
            buffer = .allocate(byteCount: max(bytes, buffer.count * 2), alignment: 64)
        }
        return UnsafeMutableRawBufferPointer(rebasing: buffer[..<bytes])
    }

    func deallocate() { buffer.deallocate() }
}

