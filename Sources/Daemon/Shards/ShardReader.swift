import SystemPackage

/// A shard: its small metadata (read at open with three reads, or taken from the dataset's
/// manifest without reading the shard at all) and positioned reads of its index pages and frames.
///
/// A value made on demand from its dataset's ``ShardTable`` (`folder.shards[i]`), which holds
/// every shard's metadata packed; the reader carries the table, its index and the metadata rebuilt
/// from the table's record. Holds no descriptor and no index: descriptors come from
/// ``DescriptorCache/shared`` and pages from ``IndexPageCache/shared`` when a read needs them.
/// Safe to share between threads; decompression uses a ``ZstdDecompressor`` the caller owns, one
/// per thread.
public struct ShardReader: Sendable {
    /// The dataset's table, and the shard's index in it.
    let table: ShardTable
    public let index: Int
    public let metadata: ShardMetadata

    /// Shard `index` of `table`.
    init(table: ShardTable, index: Int) {
        self.table = table
        self.index = index
        self.metadata = table.metadata(index)
    }

    /// The shard's file name (the last component of ``path``).
    public var fileName: String { table.fileName(index) }
    /// The shard's file path, as it was opened. Built on each call: for messages and opening.
    public var path: String { table.path(index) }
    /// Size, modification time and inode when the shard was opened; a descriptor opened later must
    /// show the same inode and size.
    public var identity: FileIdentity { table.identity(index) }
    /// Process-unique key of the shard in the descriptor and page caches: its table's number, then
    /// its index (a table holds fewer than 2^32 shards).
    var id: UInt64 { table.id(ofShard: index) }

    public var fileSize: UInt64 { identity.size }
    /// The largest compressed data frame, to size read buffers.
    public var largestFrame: Int { Int(metadata.largestFrame) }

    /// Opens a shard and reads its header, footer and metadata (three reads), checking the
    /// structure and the metadata checksum. The descriptor is closed again (reads reopen it through
    /// the descriptor cache). The shard gets a table of its own.
    /// - Throws: `ShardError` naming the file and what is wrong: not a shard, truncated, an old
    ///   version (with the `tokenfeed shard upgrade` command to run), metadata checksum mismatch,
    ///   inconsistent fields.
    public init(path: String) throws(ShardError) {
        let (_, metadata, identity) = try Self.readMetadata(path: path)
        self.init(path: path, metadata: metadata, identity: identity)
    }

    /// Opens the shard at `path`, reads its header, footer and metadata (three reads) and closes it.
    /// - Returns: the envelope read, the decoded metadata and the file's identity.
    /// - Throws: `ShardError` as ``init(path:)``.
    static func readMetadata(path: String) throws(ShardError) -> (envelope: ShardEnvelope, metadata: ShardMetadata, identity: FileIdentity) {
        let file = try openForReading(path)
        defer { try? file.close() }
        let identity: FileIdentity
        do { identity = try FileIdentity.of(file) } catch { throw ShardError(path: path, "cannot stat: \(error)") }
        let envelope = try ShardEnvelope.read(file, path: path, size: identity.size)
        return (envelope, try envelope.metadata(path: path), identity)
    }

    /// A shard whose metadata was read before, in a table of its own. Reads nothing.
    init(path: String, metadata: ShardMetadata, identity: FileIdentity) {
        self.init(table: ShardTable(path: path, metadata: metadata, identity: identity), index: 0)
    }

    // MARK: - Index

    /// Page `p` of `section`, from the page cache or read and checked.
    /// - Throws: `ShardError` naming the file, the section and the page on a read error or a page
    ///   that fails its checks (``IndexPage``).
    public func page(_ section: IndexSection, _ p: Int) throws(ShardError) -> IndexPage {
        let key = IndexPageCache.Key(shard: id, section: section, page: p)
        if let hit = IndexPageCache.shared.page(key) { return hit }
        let (offset, size, _, _) = metadata.indexLayout.page(section, p)
        let bytes = try withDescriptor { (file) throws(ShardError) in
            try ShardEnvelope.readBytes(file, path, at: offset, count: size)
        }
        let page = try withBytes(of: bytes) { (b) throws(ShardError) in
            try IndexPage.decode(b, section: section, page: p, metadata: metadata, path: path)
        }
        IndexPageCache.shared.insert(page, for: key)
        return page
    }

    /// Frame `k`'s entry of the frame table.
    /// - Throws: `ShardError` when its page cannot be read or is corrupt.
    public func frameEntry(_ k: Int) throws(ShardError) -> FrameEntry {
        precondition(k >= 0 && k < metadata.frameCount, "frame \(k) of \(metadata.frameCount)")
        let per = IndexSection.frameTable.entriesPerPage
        return try page(.frameTable, k / per).frame(k % per)
    }

    /// The end (exclusive, in tokens) of document `d`.
    /// - Throws: `ShardError` when its page cannot be read or is corrupt.
    public func documentEnd(_ d: Int) throws(ShardError) -> UInt64 {
        precondition(d >= 0 && d < metadata.documentCount, "document \(d) of \(metadata.documentCount)")
        let per = IndexSection.documentEnds.entriesPerPage
        return try page(.documentEnds, d / per).end(d % per)
    }

    /// The start of document `d`, in tokens.
    public func documentStart(_ d: Int) throws(ShardError) -> UInt64 {
        precondition(d >= 0 && d < metadata.documentCount, "document \(d) of \(metadata.documentCount)")
        let per = IndexSection.documentEnds.entriesPerPage
        let page = try page(.documentEnds, d / per)
        return d % per == 0 ? page.previousEnd : page.end(d % per - 1)
    }

    /// The document-end page holding the document that contains token `t` (`t < tokenCount`), by
    /// binary search over pages (each probe one page through the cache).
    public func documentPage(containingToken t: UInt64) throws(ShardError) -> IndexPage {
        precondition(t < metadata.tokenCount, "token \(t) of \(metadata.tokenCount)")
        var lo = 0, hi = IndexSection.documentEnds.pageCount(entries: metadata.documentCount) - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if try page(.documentEnds, mid).lastEnd <= t { lo = mid + 1 } else { hi = mid }
        }
        return try page(.documentEnds, lo)
    }

    /// The document that holds token `t`.
    public func document(containingToken t: UInt64) throws(ShardError) -> Int {
        let page = try documentPage(containingToken: t)
        return page.firstEntry + page.firstEnd(above: t)
    }

    /// Appends the ends of documents `range` to `ends` (reusing its capacity).
    public func documentEnds(_ range: Range<Int>, into ends: inout [UInt64]) throws(ShardError) {
        let per = IndexSection.documentEnds.entriesPerPage
        var d = range.lowerBound
        while d < range.upperBound {
            let page = try page(.documentEnds, d / per)
            let stop = min(range.upperBound, page.firstEntry + page.count)
            for i in d ..< stop { ends.append(page.end(i - page.firstEntry)) }
            d = stop
        }
    }

    /// Every document end. Allocates O(documents): for tools and tests.
    public func allDocumentEnds() throws(ShardError) -> [UInt64] {
        var ends: [UInt64] = []
        ends.reserveCapacity(metadata.documentCount)
        try documentEnds(0 ..< metadata.documentCount, into: &ends)
        return ends
    }

    /// Every frame-table entry. Allocates O(frames): for tools and tests.
    public func allFrames() throws(ShardError) -> [FrameEntry] {
        var frames: [FrameEntry] = []
        frames.reserveCapacity(metadata.frameCount)
        for k in 0 ..< metadata.frameCount { frames.append(try frameEntry(k)) }
        return frames
    }

    // MARK: - Frames

    /// Reads frame `k`'s compressed bytes into the start of `buffer` and checks their CRC-32.
    /// - Returns: the frame's compressed size.
    /// - Throws: `ShardError` naming the frame on a short read or checksum mismatch.
    public func readCompressedFrame(_ k: Int, into buffer: UnsafeMutableRawBufferPointer) throws(ShardError) -> Int {
        let entry = try frameEntry(k)
        let size = Int(entry.compressedSize)
        precondition(buffer.count >= size, "buffer smaller than the frame")
        let target = UnsafeMutableRawBufferPointer(rebasing: buffer[..<size])
        let n = try withDescriptor { (file) throws(ShardError) in
            do { return try file.readFully(at: entry.offset, into: target) } catch {
                throw ShardError(path: path, frame: k, "read failed: \(error)")
            }
        }
        guard n == size else {
            throw ShardError(path: path, frame: k, "file ends inside the frame (\(n) of \(size) bytes)")
        }
        let computed = crc32(UnsafeRawBufferPointer(target))
        guard computed == entry.checksum else {
            throw ShardError(path: path, frame: k, String(format32: "checksum mismatch (stored", entry.checksum, ", computed", computed))
        }
        return size
    }

    /// Reads, checks and decompresses frame `k` into `destination`, which must hold the frame's
    /// tokens; `scratch` must hold `largestFrame` bytes. No allocation.
    /// - Throws: `ShardError` naming the frame on read errors, checksum mismatch, or a frame zstd refuses.
    public func decodeFrame(_ k: Int, into destination: UnsafeMutableRawBufferPointer,
                            scratch: UnsafeMutableRawBufferPointer, decompressor: ZstdDecompressor) throws(ShardError) {
        let size = try readCompressedFrame(k, into: scratch)
        let range = metadata.tokenRange(ofFrame: k)
        let expected = Int(range.count) * metadata.tokenWidth.bytes
        precondition(destination.count >= expected, "destination smaller than the frame's tokens")
        switch decompressor.decompress(UnsafeRawBufferPointer(rebasing: scratch[..<size]),
                                       into: UnsafeMutableRawBufferPointer(rebasing: destination[..<expected])) {
        case .success(let n) where n == expected:
            return
        case .success(let n):
            throw ShardError(path: path, frame: k, "decompressed to \(n) bytes, expected \(expected)")
        case .failure(let failure):
            throw ShardError(path: path, frame: k, "zstd: \(failure.message)")
        }
    }

    /// Reads the tokens in `range` as 32-bit ids. Allocates: for tools and tests, not the hot path.
    public func tokens(_ range: Range<UInt64>) throws(ShardError) -> [UInt32] {
        precondition(range.upperBound <= metadata.tokenCount, "range beyond the shard")
        guard !range.isEmpty else { return [] }
        let width = metadata.tokenWidth.bytes
        // The frames present hold at most min(tokens_per_frame, token_count) tokens, whatever is declared.
        let frameTokens = Int(min(UInt64(metadata.tokensPerFrame), metadata.tokenCount))
        let frameBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(frameTokens * width, 1), alignment: 64)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: max(largestFrame, 1), alignment: 64)
        defer { frameBuffer.deallocate(); scratch.deallocate() }
        let decompressor = ZstdDecompressor()
        var out: [UInt32] = []
        out.reserveCapacity(range.count)
        for k in metadata.frame(containingToken: range.lowerBound) ... metadata.frame(containingToken: range.upperBound - 1) {
            try decodeFrame(k, into: frameBuffer, scratch: scratch, decompressor: decompressor)
            let frameRange = metadata.tokenRange(ofFrame: k)
            let lo = max(range.lowerBound, frameRange.lowerBound), hi = min(range.upperBound, frameRange.upperBound)
            for t in lo ..< hi {
                let i = Int(t - frameRange.lowerBound)
                out.append(width == 2
                    ? UInt32(UInt16(littleEndian: frameBuffer.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
                    : UInt32(littleEndian: frameBuffer.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
            }
        }
        return out
    }

    /// Runs `body` with a descriptor of this shard from the descriptor cache.
    func withDescriptor<R>(_ body: (FileDescriptor) throws(ShardError) -> R) throws(ShardError) -> R {
        try DescriptorCache.shared.withDescriptor(id: id, path: self.path, identity: identity, body)
    }
}

/// A planner's view of the document ends of the shards it walks: keeps the last page it used, so
/// that walking forwards takes the shared page cache's lock once per page (510 documents), not per
/// lookup. One per planner (not shared between threads).
public struct DocumentLocator: Sendable {
    private var shard: UInt64 = .max
    private var page: IndexPage?

    public init() {}

    /// The document of `reader` holding token `t` and its end.
    /// - Throws: `ShardError` when a page cannot be read or is corrupt.
    public mutating func document(containingToken t: UInt64, in reader: ShardReader) throws(ShardError) -> (document: Int, end: UInt64) {
        try document(containingToken: t, shard: reader.index, of: reader.table)
    }

    /// The document of shard `s` of `table` holding token `t` and its end. Makes the shard's
    /// reader only when the last page used does not hold `t`.
    /// - Throws: `ShardError` when a page cannot be read or is corrupt.
    public mutating func document(containingToken t: UInt64, shard s: Int, of table: ShardTable) throws(ShardError) -> (document: Int, end: UInt64) {
        if let page, shard == table.id(ofShard: s), page.previousEnd <= t, t < page.lastEnd {
            let i = page.firstEnd(above: t)
            return (page.firstEntry + i, page.end(i))
        }
        let reader = table[s]
        let found = try reader.documentPage(containingToken: t)
        shard = reader.id
        page = found
        let i = found.firstEnd(above: t)
        return (found.firstEntry + i, found.end(i))
    }
}
