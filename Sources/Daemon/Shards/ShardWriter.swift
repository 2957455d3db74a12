import Dispatch
import SystemPackage
import TokenfeedSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes one shard, streaming: tokens go in as they come, full frames are compressed in parallel
/// batches (one zstd context per frame of a batch) and written in order. Two batches alternate:
/// while one is compressed on the worker threads, the caller fills the other, so reading the
/// source overlaps compression. Memory stays at `2 × 2 × parallelism` frames of raw and
/// compressed bytes, whatever the shard's size.
///
/// The shard is written to `PATH.partial` and renamed to `PATH` by ``finish()``, so a crash never
/// leaves a half-written file under the shard's name.
public final class ShardWriter {
    public let path: String
    public let tokenWidth: TokenWidth
    public let tokensPerFrame: Int
    private let declaredVocabulary: UInt32?
    /// The tokenizer recorded in the metadata (nil: unknown).
    public let tokenizer: String?
    private let file: FileDescriptor
    private let partialPath: String

    private let frameBytes: Int
    private let batchSize: Int
    private let bound: Int
    private let batches: [FrameBatch]                       // two, alternating
    private var filling = 0                                 // the batch being filled
    private var rawFill = 0                                 // bytes filled in `batches[filling].raw`
    private var compressing: (batch: Int, frames: Int)?     // the batch on the workers, if any
    private let compression = DispatchGroup()
    private var fileOffset: UInt64 = 0
    private var frames: [FrameEntry] = []
    private var documentEnds: [UInt64] = []
    private var tokenCount: UInt64 = 0
    private var maxToken: UInt32 = 0
    private var finished = false

    /// Creates `path` (through `path.partial`) and writes the header frame.
    ///
    /// - Parameters:
    ///   - vocabularySize: every id must be below it; nil records the largest id seen plus one.
    ///   - tokenizer: the tokenizer's name, kept in the metadata; nil records it as unknown.
    ///   - parallelism: frames compressed at once (defaults to the number of active cores).
    /// - Throws: `ShardError` when the tokenizer name is not valid (``ShardMetadata/problem(withTokenizer:)``)
    ///   or the file cannot be created or written.
    public init(path: String, tokenWidth: TokenWidth, vocabularySize: UInt32?,
                tokensPerFrame: Int = ShardFormat.defaultTokensPerFrame, level: Int32 = 3,
                tokenizer: String? = nil, parallelism: Int? = nil) throws(ShardError) {
        precondition(tokensPerFrame > 0 && tokensPerFrame <= ShardFormat.maxTokensPerFrame)
        if let tokenizer, let problem = ShardMetadata.problem(withTokenizer: tokenizer) {
            throw ShardError(path: path, field: "tokenizer", problem)
        }
        self.tokenizer = tokenizer
        self.path = path
        self.partialPath = path + ".partial"
        self.tokenWidth = tokenWidth
        self.tokensPerFrame = tokensPerFrame
        self.declaredVocabulary = vocabularySize
        self.frameBytes = tokensPerFrame * tokenWidth.bytes
        let workers = max(1, parallelism ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        self.batchSize = 2 * workers
        self.bound = ZstdCompressor.bound(frameBytes)
        self.batches = (0 ..< 2).map { [frameBytes, bound, batchSize] _ in
            FrameBatch(frames: batchSize, frameBytes: frameBytes, bound: bound, level: level)
        }
        do {
            file = try FileDescriptor.open(FilePath(partialPath), .writeOnly,
                                           options: [.create, .truncate, .closeOnExec],
                                           permissions: [.ownerReadWrite, .groupRead, .otherRead])
        } catch {
            throw ShardError(path: partialPath, "cannot create: \(error)")
        }
        try writeBytes(ShardTail.header(tokenWidth: tokenWidth, tokensPerFrame: tokensPerFrame))
    }

    deinit {
        compression.wait()
        if !finished {
            try? file.close()
            _ = unlink(partialPath)
        }
    }

    /// Appends little-endian token ids (`tokens.count` must be a multiple of the token width).
    /// - Throws: `ShardError` when an id is not below the declared vocabulary size, or on write errors.
    public func write(tokens: UnsafeRawBufferPointer) throws(ShardError) {
        precondition(tokens.count % tokenWidth.bytes == 0)
        try checkIds(tokens)
        var taken = 0
        while taken < tokens.count {
            let n = min(tokens.count - taken, batchSize * frameBytes - rawFill)
            UnsafeMutableRawBufferPointer(rebasing: batches[filling].raw[rawFill ..< rawFill + n])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: tokens[taken ..< taken + n]))
            rawFill += n
            taken += n
            if rawFill == batchSize * frameBytes { try flush() }
        }
        tokenCount += UInt64(tokens.count / tokenWidth.bytes)
    }

    /// Appends token ids given as integers (for tests and generators).
    public func write<C: Collection>(tokens: C) throws(ShardError) where C.Element: BinaryInteger {
        var bytes = LittleEndianWriter()
        for t in tokens {
            if tokenWidth == .uint16 { bytes.append(UInt16(truncatingIfNeeded: t)) } else { bytes.append(UInt32(truncatingIfNeeded: t)) }
            guard t >= 0, UInt64(t) <= (tokenWidth == .uint16 ? UInt64(UInt16.max) : UInt64(UInt32.max)) else {
                throw ShardError(path: path, "token id \(t) does not fit in \(tokenWidth)")
            }
        }
        try withBytes(of: bytes.bytes) { (b) throws(ShardError) in try write(tokens: b) }
    }

    /// Ends the current document at the tokens written so far.
    /// - Throws: `ShardError` when the document would be empty.
    public func endDocument() throws(ShardError) {
        try markDocumentEnd(at: tokenCount)
    }

    /// Records a document end at token offset `end` (cumulative, as in a datatrove `.ds.index`).
    /// Ends must increase strictly; the last must equal the token count at ``finish()``.
    public func markDocumentEnd(at end: UInt64) throws(ShardError) {
        let previous = documentEnds.last ?? 0
        guard end > previous else {
            throw ShardError(path: path, "document \(documentEnds.count) ends at token \(end), not after the previous end \(previous)")
        }
        documentEnds.append(end)
    }

    /// Writes the remaining frames, the metadata and the footer, and renames the file into place.
    /// - Returns: the shard's metadata, as a reader will see it.
    @discardableResult
    public func finish() throws(ShardError) -> ShardMetadata {
        precondition(!finished)
        try flush()
        try drain()
        guard (documentEnds.last ?? 0) == tokenCount else {           // an empty shard has no document
            throw ShardError(path: path, "documents end at token \(documentEnds.last ?? 0) but \(tokenCount) tokens were written")
        }
        let vocabulary = declaredVocabulary ?? (tokenCount == 0 ? 0 : maxToken + 1)
        let (tail, metadata) = try ShardTail.encode(path: path, tokenWidth: tokenWidth, tokensPerFrame: tokensPerFrame,
                                                    vocabularySize: vocabulary, tokenCount: tokenCount, frames: frames,
                                                    documentEnds: documentEnds, tokenizer: tokenizer, indexOffset: fileOffset)
        try writeBytes(tail)
        do {
            try file.close()
        } catch {
            throw ShardError(path: partialPath, "close failed: \(error)")
        }
        do { _ = try systemCall { rename(partialPath, path) } } catch {
            throw ShardError(path: path, "cannot rename \(partialPath) into place: \(error)")
        }
        finished = true
        return metadata
    }

    // MARK: - Internals

    private func checkIds(_ tokens: UnsafeRawBufferPointer) throws(ShardError) {
        var largest: UInt32 = 0
        switch tokenWidth {
        case .uint16:
            for i in stride(from: 0, to: tokens.count, by: 2) {
                largest = max(largest, UInt32(tokens.loadLE(i, as: UInt16.self)))
            }
        case .uint32:
            for i in stride(from: 0, to: tokens.count, by: 4) {
                largest = max(largest, tokens.loadLE(i, as: UInt32.self))
            }
        }
        if let vocabulary = declaredVocabulary, largest >= vocabulary {
            // Find the first offender to name it.
            for i in 0 ..< tokens.count / tokenWidth.bytes {
                let id = tokenWidth == .uint16
                    ? UInt32(tokens.loadLE(i * 2, as: UInt16.self))
                    : tokens.loadLE(i * 4, as: UInt32.self)
                if id >= vocabulary {
                    throw ShardError(path: path, "token \(tokenCount + UInt64(i)) has id \(id), not below the vocabulary size \(vocabulary)")
                }
            }
        }
        maxToken = max(maxToken, largest)
    }

    /// Hands the filled batch to the workers (after writing the previous one) and switches the
    /// caller to the other batch.
    private func flush() throws(ShardError) {
        guard rawFill > 0 else { return }
        try drain()
        let batch = batches[filling]
        let count = (rawFill + frameBytes - 1) / frameBytes
        let job = CompressionJob(batch: batch, frameBytes: frameBytes, bound: bound, fill: rawFill)
        compression.enter()
        DispatchQueue.global(qos: .userInitiated).async { [compression] in
            DispatchQueue.concurrentPerform(iterations: count) { i in job.compressFrame(i) }
            compression.leave()
        }
        compressing = (filling, count)
        filling ^= 1
        rawFill = 0
    }

    /// Waits for the batch on the workers, if any, and writes its frames in order.
    private func drain() throws(ShardError) {
        guard let (index, count) = compressing else { return }
        compression.wait()
        compressing = nil
        let batch = batches[index]
        for i in 0 ..< count {
            let size = batch.sizes[i]
            frames.append(FrameEntry(offset: fileOffset, compressedSize: UInt32(size), checksum: batch.sums[i]))
            try writeBytes(UnsafeRawBufferPointer(rebasing: batch.compressed[i * bound ..< i * bound + size]))
        }
    }

    private func writeBytes(_ bytes: [UInt8]) throws(ShardError) {
        try withBytes(of: bytes) { (b) throws(ShardError) in try writeBytes(b) }
    }

    private func writeBytes(_ bytes: UnsafeRawBufferPointer) throws(ShardError) {
        do {
            _ = try file.writeAll(bytes)
        } catch {
            throw ShardError(path: partialPath, "write failed at byte \(fileOffset): \(error)")
        }
        fileOffset += UInt64(bytes.count)
    }
}

/// The buffers of one batch of frames: raw input, compressed output, one zstd context per frame,
/// and per-frame results.
///
/// `@unchecked Sendable`: while a batch is on the workers, iteration `i` touches only frame `i`'s
/// ranges, context and results, and the writer touches the batch again only after waiting for the
/// whole batch (`DispatchGroup.wait`, which orders the workers' writes before the writer's reads).
private final class FrameBatch: @unchecked Sendable {
    let raw: UnsafeMutableRawBufferPointer
    let compressed: UnsafeMutableRawBufferPointer
    let compressors: [ZstdCompressor]
    let sizes: UnsafeMutableBufferPointer<Int>
    let sums: UnsafeMutableBufferPointer<UInt32>

    init(frames: Int, frameBytes: Int, bound: Int, level: Int32) {
        raw = .allocate(byteCount: frames * frameBytes, alignment: 64)
        compressed = .allocate(byteCount: frames * bound, alignment: 64)
        compressors = (0 ..< frames).map { _ in ZstdCompressor(level: level) }
        sizes = .allocate(capacity: frames)
        sums = .allocate(capacity: frames)
    }

    deinit {
        raw.deallocate()
        compressed.deallocate()
        sizes.deallocate()
        sums.deallocate()
    }
}

/// One batch's compression: iteration `i` compresses frame `i` and records its size and CRC-32.
private struct CompressionJob: Sendable {
    let batch: FrameBatch
    let frameBytes: Int
    let bound: Int
    let fill: Int

    func compressFrame(_ i: Int) {
        let input = UnsafeRawBufferPointer(rebasing: batch.raw[i * frameBytes ..< min(fill, (i + 1) * frameBytes)])
        let output = UnsafeMutableRawBufferPointer(rebasing: batch.compressed[i * bound ..< (i + 1) * bound])
        let size = batch.compressors[i].compress(input, into: output)
        batch.sizes[i] = size
        batch.sums[i] = crc32(UnsafeRawBufferPointer(rebasing: output[..<size]))
    }
}
