import Dispatch
import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes one shard, streaming: tokens go in as they come, full frames are compressed in parallel
/// batches (one zstd context per worker) and written in order. Memory stays at
/// `2 × parallelism` frames of raw and compressed bytes, whatever the shard's size.
///
/// The shard is written to `PATH.partial` and renamed to `PATH` by ``finish()``, so a crash never
/// leaves a half-written file under the shard's name.
public final class ShardWriter {
    public let path: String
    public let tokenWidth: TokenWidth
    public let tokensPerFrame: Int
    private let declaredVocabulary: UInt32?
    private let file: FileDescriptor
    private let partialPath: String

    private let frameBytes: Int
    private let batchSize: Int
    private let raw: UnsafeMutableRawBufferPointer          // batchSize × frameBytes
    private let compressed: UnsafeMutableRawBufferPointer   // batchSize × bound
    private let bound: Int
    private var compressors: [ZstdCompressor]
    private var rawFill = 0                                 // bytes filled in `raw`
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
    ///   - parallelism: frames compressed at once (defaults to the number of active cores).
    /// - Throws: `ShardError` when the file cannot be created or written.
    public init(path: String, tokenWidth: TokenWidth, vocabularySize: UInt32?,
                tokensPerFrame: Int = ShardFormat.defaultTokensPerFrame, level: Int32 = 3,
                parallelism: Int? = nil) throws(ShardError) {
        precondition(tokensPerFrame > 0 && tokensPerFrame <= ShardFormat.maxTokensPerFrame)
        self.path = path
        self.partialPath = path + ".partial"
        self.tokenWidth = tokenWidth
        self.tokensPerFrame = tokensPerFrame
        self.declaredVocabulary = vocabularySize
        self.frameBytes = tokensPerFrame * tokenWidth.bytes
        let workers = max(1, parallelism ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        self.batchSize = 2 * workers
        self.bound = ZstdCompressor.bound(frameBytes)
        self.raw = .allocate(byteCount: batchSize * frameBytes, alignment: 64)
        self.compressed = .allocate(byteCount: batchSize * bound, alignment: 64)
        self.compressors = (0 ..< batchSize).map { _ in ZstdCompressor(level: level) }
        do {
            file = try FileDescriptor.open(FilePath(partialPath), .writeOnly,
                                           options: [.create, .truncate, .closeOnExec],
                                           permissions: [.ownerReadWrite, .groupRead, .otherRead])
        } catch {
            raw.deallocate()
            compressed.deallocate()
            throw ShardError(path: partialPath, "cannot create: \(error)")
        }
        var header = LittleEndianWriter()
        header.append(ShardFormat.skippableMagic)
        header.append(UInt32(ShardFormat.headerPayloadSize))
        header.append(bytes: ShardFormat.headerTag)
        header.append(ShardFormat.version)
        header.append(tokenWidth.rawValue)
        header.append(UInt8(0))
        header.append(UInt32(tokensPerFrame))
        try writeBytes(header.bytes)
    }

    deinit {
        raw.deallocate()
        compressed.deallocate()
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
            UnsafeMutableRawBufferPointer(rebasing: raw[rawFill ..< rawFill + n])
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
        guard documentEnds.last == tokenCount else {
            throw ShardError(path: path, "documents end at token \(documentEnds.last ?? 0) but \(tokenCount) tokens were written")
        }
        let vocabulary = declaredVocabulary ?? (tokenCount == 0 ? 0 : maxToken + 1)
        let metadata = ShardMetadata(tokenWidth: tokenWidth, tokensPerFrame: tokensPerFrame,
                                     vocabularySize: vocabulary, tokenCount: tokenCount,
                                     frames: frames, documentEnds: documentEnds)
        let payload = metadata.encodedPayload()
        let metadataOffset = fileOffset
        var tail = LittleEndianWriter()
        tail.append(ShardFormat.skippableMagic)
        tail.append(UInt32(payload.count))
        tail.append(bytes: payload)
        tail.append(ShardFormat.skippableMagic)
        tail.append(UInt32(ShardFormat.footerPayloadSize))
        tail.append(bytes: ShardFormat.footerTag)
        tail.append(metadataOffset)
        tail.append(UInt64(ShardFormat.skippableHeaderSize + payload.count))
        try writeBytes(tail.bytes)
        do {
            try file.close()
        } catch {
            throw ShardError(path: partialPath, "close failed: \(error)")
        }
        guard rename(partialPath, path) == 0 else {
            throw ShardError(path: path, "cannot rename \(partialPath) into place: errno \(errno)")
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
                largest = max(largest, UInt32(UInt16(littleEndian: tokens.loadUnaligned(fromByteOffset: i, as: UInt16.self))))
            }
        case .uint32:
            for i in stride(from: 0, to: tokens.count, by: 4) {
                largest = max(largest, UInt32(littleEndian: tokens.loadUnaligned(fromByteOffset: i, as: UInt32.self)))
            }
        }
        if let vocabulary = declaredVocabulary, largest >= vocabulary {
            // Find the first offender to name it.
            for i in 0 ..< tokens.count / tokenWidth.bytes {
                let id = tokenWidth == .uint16
                    ? UInt32(UInt16(littleEndian: tokens.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
                    : UInt32(littleEndian: tokens.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
                if id >= vocabulary {
                    throw ShardError(path: path, "token \(tokenCount + UInt64(i)) has id \(id), not below the vocabulary size \(vocabulary)")
                }
            }
        }
        maxToken = max(maxToken, largest)
    }

    /// Compresses the filled frames of the batch in parallel and writes them in order.
    private func flush() throws(ShardError) {
        guard rawFill > 0 else { return }
        let count = (rawFill + frameBytes - 1) / frameBytes
        var sizes = [Int](repeating: 0, count: count)
        var sums = [UInt32](repeating: 0, count: count)
        let job = CompressionJob(raw: raw, compressed: compressed, frameBytes: frameBytes, bound: bound,
                                 fill: rawFill, compressors: compressors)
        sizes.withUnsafeMutableBufferPointer { sizes in
            sums.withUnsafeMutableBufferPointer { sums in
                let out = OutputSlots(sizes: sizes, sums: sums)
                DispatchQueue.concurrentPerform(iterations: count) { i in
                    let (size, sum) = job.compressFrame(i)
                    out.sizes[i] = size
                    out.sums[i] = sum
                }
            }
        }
        for i in 0 ..< count {
            let bytes = UnsafeRawBufferPointer(rebasing: compressed[i * bound ..< i * bound + sizes[i]])
            frames.append(FrameEntry(offset: fileOffset, compressedSize: UInt32(sizes[i]), checksum: sums[i]))
            try writeBytes(bytes)
        }
        rawFill = 0
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

/// The read-only description of one parallel compression batch. Each iteration `i` touches only
/// frame `i`'s input and output ranges and compressor `i`, so the iterations share nothing mutable.
private struct CompressionJob: @unchecked Sendable {
    let raw: UnsafeMutableRawBufferPointer
    let compressed: UnsafeMutableRawBufferPointer
    let frameBytes: Int
    let bound: Int
    let fill: Int
    let compressors: [ZstdCompressor]

    func compressFrame(_ i: Int) -> (Int, UInt32) {
        let input = UnsafeRawBufferPointer(rebasing: raw[i * frameBytes ..< min(fill, (i + 1) * frameBytes)])
        let output = UnsafeMutableRawBufferPointer(rebasing: compressed[i * bound ..< (i + 1) * bound])
        let size = compressors[i].compress(input, into: output)
        return (size, crc32(UnsafeRawBufferPointer(rebasing: output[..<size])))
    }
}

/// Per-frame results; iteration `i` writes only index `i`.
private struct OutputSlots: @unchecked Sendable {
    let sizes: UnsafeMutableBufferPointer<Int>
    let sums: UnsafeMutableBufferPointer<UInt32>
}
