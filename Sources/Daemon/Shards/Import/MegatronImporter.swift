import SystemPackage
import TokenfeedSystem

/// Converts a Megatron-core indexed dataset (`X.bin` tokens + `X.idx` index) into a shard `X.zst`.
///
/// `X.idx`: `b"MMIDIDX\x00\x00"`, `<Q` version (1), `<B` dtype code, `<Q` sequence count n,
/// `<Q` document-index count m, then int32 sequence lengths[n], int64 byte pointers[n] into `.bin`,
/// int64 document indices[m] (sequence index where each document starts, first 0, last n).
/// A document is the concatenation of its sequences. Supported dtypes: uint16 (code 8) and
/// int32 (code 4, stored as uint32). Empty documents are skipped and counted.
public enum MegatronImporter {
    static let magic: [UInt8] = Array("MMIDIDX\0\0".utf8)

    /// Imports the dataset with path prefix `prefix` (`prefix.bin`, `prefix.idx`).
    public static func importDataset(prefix: String, into outputFolder: String, options: ImportOptions) throws(ShardError) -> ImportSummary {
        let idxPath = prefix + ".idx", binPath = prefix + ".bin"
        let index = try MegatronIndex(path: idxPath)
        let bin = try openForReading(binPath)
        defer { try? bin.close() }
        let binSize: UInt64
        do { binSize = try bin.fileSize() } catch { throw ShardError(path: binPath, "cannot stat: \(error)") }
        let width = index.width
        for s in 0 ..< index.lengths.count {
            let end = index.pointers[s] + UInt64(index.lengths[s]) * UInt64(width.bytes)
            guard end <= binSize else {
                throw ShardError(path: idxPath, "sequence \(s) ends at byte \(end), beyond \(binPath) (\(binSize) bytes)")
            }
        }
        let name = baseName(prefix, droppingSuffix: "")
        let shardPath = outputFolder + "/" + name + "." + ShardFormat.fileExtension
        let writer = try ShardWriter(path: shardPath, tokenWidth: width, vocabularySize: options.vocabularySize,
                                     tokensPerFrame: options.tokensPerFrame, level: options.level, tokenizer: options.tokenizer,
                                     parallelism: options.parallelism)
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: options.readChunkBytes, alignment: 64)
        defer { chunk.deallocate() }

        // Reads byte range [start, end) of .bin into the writer, a chunk at a time.
        func copy(_ start: UInt64, _ end: UInt64) throws(ShardError) {
            var at = start
            while at < end {
                let want = Int(min(UInt64(chunk.count - chunk.count % width.bytes), end - at))
                let n: Int
                do { n = try bin.readFully(at: at, into: UnsafeMutableRawBufferPointer(rebasing: chunk[..<want])) } catch {
                    throw ShardError(path: binPath, "read failed at byte \(at): \(error)")
                }
                guard n == want else { throw ShardError(path: binPath, "file ends at byte \(at + UInt64(n))") }
                if width == .uint32 { try checkNonNegative(UnsafeRawBufferPointer(rebasing: chunk[..<n]), at: at, path: binPath) }
                try writer.write(tokens: UnsafeRawBufferPointer(rebasing: chunk[..<n]))
                options.progress?.add(bytes: n, width: width)
                at += UInt64(n)
            }
        }

        var tokens: UInt64 = 0, skipped = 0, rawBytes: UInt64 = 0
        var pendingStart: UInt64 = 0, pendingEnd: UInt64 = 0          // contiguous .bin range not yet copied
        for d in 0 ..< index.documents.count - 1 {
            var documentTokens: UInt64 = 0
            for s in Int(index.documents[d]) ..< Int(index.documents[d + 1]) {
                let start = index.pointers[s], length = UInt64(index.lengths[s])
                if length == 0 { continue }
                if start != pendingEnd || pendingEnd - pendingStart >= UInt64(chunk.count) {
                    try copy(pendingStart, pendingEnd)
                    pendingStart = start
                }
                pendingEnd = start + length * UInt64(width.bytes)
                documentTokens += length
            }
            if documentTokens == 0 { skipped += 1; continue }
            tokens += documentTokens
            rawBytes += documentTokens * UInt64(width.bytes)
            try writer.markDocumentEnd(at: tokens)       // ends may run ahead of the tokens copied so far
        }
        try copy(pendingStart, pendingEnd)
        guard tokens > 0 else { throw ShardError(path: idxPath, "the dataset holds no tokens") }
        let metadata = try writer.finish()
        return ImportSummary(source: prefix, shard: shardPath, metadata: metadata, rawBytes: rawBytes, emptyDocumentsSkipped: skipped)
    }

    private static func checkNonNegative(_ bytes: UnsafeRawBufferPointer, at offset: UInt64, path: String) throws(ShardError) {
        for i in stride(from: 0, to: bytes.count, by: 4) where bytes.loadLE(i, as: Int32.self) < 0 {
            throw ShardError(path: path, "negative token id at byte \(offset + UInt64(i))")
        }
    }
}

/// A parsed and checked Megatron `.idx` file.
struct MegatronIndex {
    let width: TokenWidth
    let lengths: [UInt32]
    let pointers: [UInt64]
    let documents: [UInt64]

    init(path: String) throws(ShardError) {
        func fail(_ m: String) -> ShardError { ShardError(path: path, m) }
        let file = try openForReading(path)
        defer { try? file.close() }
        let size: UInt64
        do { size = try file.fileSize() } catch { throw fail("cannot stat: \(error)") }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        do { _ = try bytes.withUnsafeMutableBytes { try file.readFully(at: 0, into: $0) } } catch { throw fail("read failed: \(error)") }
        let parsed: (TokenWidth, [UInt32], [UInt64], [UInt64]) = try withBytes(of: bytes) { (b) throws(ShardError) in
            var r = LittleEndianReader(b)
            guard r.readBytes(9) == MegatronImporter.magic else { throw fail("bad magic: expected MMIDIDX\\x00\\x00 at byte 0") }
            guard let version = r.read(UInt64.self), version == 1 else { throw fail("byte 9: version must be 1") }
            guard let code = r.read(UInt8.self) else { throw fail("byte 17: truncated dtype") }
            let width: TokenWidth
            switch code {
            case 8: width = .uint16
            case 4: width = .uint32
            default: throw fail("byte 17: dtype code \(code) is not supported (8 = uint16, 4 = int32)")
            }
            guard let n = r.read(UInt64.self), let m = r.read(UInt64.self) else { throw fail("truncated header") }
            let expected = 34 + 4 * n + 8 * n + 8 * m
            guard n < UInt64(Int32.max), m >= 1, UInt64(b.count) == expected else {
                throw fail("size \(b.count) bytes does not match \(n) sequences and \(m) document indices (expected \(expected))")
            }
            var lengths = [UInt32](), pointers = [UInt64](), documents = [UInt64]()
            lengths.reserveCapacity(Int(n)); pointers.reserveCapacity(Int(n)); documents.reserveCapacity(Int(m))
            for s in 0 ..< Int(n) {
                let l = r.read(Int32.self)!
                guard l >= 0 else { throw fail("sequence \(s): negative length \(l)") }
                lengths.append(UInt32(l))
            }
            for s in 0 ..< Int(n) {
                let p = r.read(Int64.self)!
                guard p >= 0 else { throw fail("sequence \(s): negative pointer \(p)") }
                pointers.append(UInt64(p))
            }
            var previous: UInt64 = 0
            for j in 0 ..< Int(m) {
                let v = r.read(Int64.self)!
                guard v >= 0, UInt64(v) >= previous, UInt64(v) <= n, j > 0 || v == 0 else {
                    throw fail("document index \(j) = \(v) must be within 0...\(n), start at 0 and not decrease")
                }
                previous = UInt64(v)
                documents.append(UInt64(v))
            }
            guard documents.last == n else { throw fail("last document index is \(documents.last!), expected the sequence count \(n)") }
            return (width, lengths, pointers, documents)
        }
        (width, lengths, pointers, documents) = parsed
    }
}
