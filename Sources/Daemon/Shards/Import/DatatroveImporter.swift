import SystemPackage
import TokenfeedSystem

/// Converts datatrove tokenizer output (`X.ds` raw little-endian tokens + `X.ds.index` cumulative
/// uint64 document ends, optional `X.ds.metadata` with `tokenizer|token_size`) into a shard `X.zst`.
/// The `.ds` is streamed in chunks; the index is read whole (8 bytes a document).
public enum DatatroveImporter {
    /// Imports `dsPath` into `outputFolder/<name>.zst`.
    /// - Throws: `ShardError` naming the file: missing index, index entries that are not increasing
    ///   or that do not match the token file, a `.ds` whose size is not a multiple of its token size,
    ///   a token size or tokenizer that disagrees with `.ds.metadata` (or `options.tokenizer`), ids
    ///   beyond the vocabulary, a `.ds.loss` mask without `options.ignoreLossMasks`.
    public static func importFile(_ dsPath: String, into outputFolder: String, options: ImportOptions) throws(ShardError) -> ImportSummary {
        let indexPath = dsPath + ".index"
        let ends = try readIndex(indexPath)
        let ds = try openForReading(dsPath)
        defer { try? ds.close() }
        let size: UInt64
        do { size = try ds.fileSize() } catch { throw ShardError(path: dsPath, "cannot stat: \(error)") }
        let tokenCount = ends.last ?? 0
        guard tokenCount > 0 else { throw ShardError(path: indexPath, "index lists no tokens") }

        // Token size: .ds.metadata when present, and always size ÷ last index entry; the two must agree.
        let lossPath = dsPath + ".loss"
        if !options.ignoreLossMasks, (try? FileDescriptor.open(FilePath(lossPath), .readOnly))
            .map({ fd in try? fd.close(); return true }) == true {
            throw ShardError(path: lossPath, "loss masks are not supported: shards keep tokens and document ends only. "
                             + "Give --ignore-loss-masks to import the tokens without the mask (every token then counts in the loss)")
        }
        let (declared, declaredTokenizer) = try readDeclaredMetadata(dsPath + ".metadata")
        if let declaredTokenizer, let given = options.tokenizer, given != declaredTokenizer {
            throw ShardError(path: dsPath + ".metadata", field: "tokenizer",
                             "tokenizer \"\(declaredTokenizer)\" disagrees with --tokenizer \"\(given)\"")
        }
        let tokenizer = options.tokenizer ?? declaredTokenizer
        guard size % tokenCount == 0, let inferred = TokenWidth(rawValue: UInt8(clamping: size / tokenCount)) else {
            throw ShardError(path: dsPath, "size \(size) bytes does not match the index's \(tokenCount) tokens at 2 or 4 bytes a token (index \(indexPath))")
        }
        if let declared, declared != inferred {
            throw ShardError(path: dsPath + ".metadata", "token size \(declared.bytes) disagrees with the files (\(size) bytes for \(tokenCount) tokens = \(inferred.bytes))")
        }
        guard size % UInt64(inferred.bytes) == 0 else {
            throw ShardError(path: dsPath, "size \(size) is not a multiple of the token size \(inferred.bytes)")
        }

        let name = baseName(dsPath, droppingSuffix: ".ds")
        let shardPath = outputFolder + "/" + name + "." + ShardFormat.fileExtension
        let writer = try ShardWriter(path: shardPath, tokenWidth: inferred, vocabularySize: options.vocabularySize,
                                     tokensPerFrame: options.tokensPerFrame, level: options.level, tokenizer: tokenizer,
                                     parallelism: options.parallelism)
        for end in ends { try writer.markDocumentEnd(at: end) }
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: options.readChunkBytes - options.readChunkBytes % 4, alignment: 64)
        defer { chunk.deallocate() }
        var offset: UInt64 = 0
        while offset < size {
            let want = Int(min(UInt64(chunk.count), size - offset))
            let n: Int
            do { n = try ds.readFully(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: chunk[..<want])) } catch {
                throw ShardError(path: dsPath, "read failed at byte \(offset): \(error)")
            }
            guard n == want else { throw ShardError(path: dsPath, "file shrank while reading (ends at byte \(offset + UInt64(n)))") }
            try writer.write(tokens: UnsafeRawBufferPointer(rebasing: chunk[..<n]))
            options.progress?.add(bytes: n, width: inferred)
            offset += UInt64(n)
        }
        let metadata = try writer.finish()
        return ImportSummary(source: dsPath, shard: shardPath, metadata: metadata, rawBytes: size)
    }

    /// Reads a `.ds.index`: little-endian uint64 cumulative document ends, strictly increasing.
    static func readIndex(_ path: String) throws(ShardError) -> [UInt64] {
        let file = try openForReading(path)
        defer { try? file.close() }
        let size: UInt64
        do { size = try file.fileSize() } catch { throw ShardError(path: path, "cannot stat: \(error)") }
        guard size % 8 == 0 else { throw ShardError(path: path, "size \(size) is not a multiple of 8 (uint64 entries)") }
        var ends = [UInt64](repeating: 0, count: Int(size / 8))
        let n: Int
        do { n = try ends.withUnsafeMutableBytes { try file.readFully(at: 0, into: $0) } } catch {
            throw ShardError(path: path, "read failed: \(error)")
        }
        guard n == Int(size) else { throw ShardError(path: path, "short read") }
        var previous: UInt64 = 0
        for i in ends.indices {
            ends[i] = UInt64(littleEndian: ends[i])
            guard ends[i] > previous else {
                throw ShardError(path: path, "entry \(i) (document end \(ends[i])) is not after entry \(i - 1) (\(previous)): documents must be non-empty and in order")
            }
            previous = ends[i]
        }
        return ends
    }

    /// The token size and tokenizer name in `X.ds.metadata` (first line `tokenizer|token_size`), or
    /// nils when the file is absent (the name is nil when empty).
    static func readDeclaredMetadata(_ path: String) throws(ShardError) -> (TokenWidth?, String?) {
        guard let file = try? FileDescriptor.open(FilePath(path), .readOnly) else { return (nil, nil) }
        defer { try? file.close() }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let n = (try? bytes.withUnsafeMutableBytes { try file.readFully(at: 0, into: $0) }) ?? 0
        let text = String(decoding: bytes[..<n], as: UTF8.self)
        let firstLine = text.split(separator: "\n", omittingEmptySubsequences: false).first ?? ""
        guard let bar = firstLine.lastIndex(of: "|"), let size = UInt8(firstLine[firstLine.index(after: bar)...].trimmingCharacters()),
              let width = TokenWidth(rawValue: size) else {
            throw ShardError(path: path, "line 1: expected `tokenizer|token_size` with token_size 2 or 4, found \"\(firstLine)\"")
        }
        let name = String(firstLine[..<bar])
        if name.isEmpty { return (width, nil) }
        if let problem = ShardMetadata.problem(withTokenizer: name) { throw ShardError(path: path, field: "tokenizer", "line 1: \(problem)") }
        return (width, name)
    }
}

func baseName(_ path: String, droppingSuffix suffix: String) -> String {
    var name = String(path.split(separator: "/").last ?? Substring(path))
    if name.hasSuffix(suffix) { name.removeLast(suffix.count) }
    return name
}

extension Substring {
    func trimmingCharacters() -> String {
        String(drop(while: { $0 == " " || $0 == "\r" || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\r" || $0 == "\t" }).reversed())
    }
}
