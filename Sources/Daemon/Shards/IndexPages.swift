import TokenfeedSystem

/// The two sections of a version 3 shard's index frame, each a fixed-width array cut into pages of
/// at most 4 KiB that carry their own CRC-32, so that any entry is found by arithmetic and checked
/// on its own (docs/SHARDS.md, "Index frame").
public enum IndexSection: UInt8, Sendable, Hashable {
    /// Per data frame: `u64 offset`, `u32 compressed size`, `u32 CRC-32`; 255 entries a page.
    case frameTable = 0
    /// Per page: `u64` end of the document before the page's first one, then up to 510 `u64`
    /// cumulative document ends (as datatrove's `.ds.index`).
    case documentEnds = 1

    /// The section's name in docs/SHARDS.md and in errors.
    public var field: String { self == .frameTable ? "frame_table" : "document_ends" }
    /// Entries in a full page.
    public var entriesPerPage: Int {
        self == .frameTable ? ShardFormat.frameEntriesPerPage : ShardFormat.documentEndsPerPage
    }
    /// Bytes of one entry.
    public var entryBytes: Int { self == .frameTable ? ShardFormat.frameEntrySize : 8 }
    /// Bytes before a page's entries (the document-end pages start with the previous end).
    public var pagePrefix: Int { self == .frameTable ? 0 : 8 }
    /// Bytes of a full page: prefix, entries, CRC-32.
    public var pageStride: Int { pagePrefix + entriesPerPage * entryBytes + 4 }

    /// Pages holding `count` entries.
    public func pageCount(entries count: Int) -> Int { (count + entriesPerPage - 1) / entriesPerPage }

    /// Bytes of a section of `count` entries, or nil when it does not fit in 64 bits.
    public func bytes(entries count: UInt64) -> UInt64? {
        let pages = (count + UInt64(entriesPerPage) - 1) / UInt64(entriesPerPage)
        let (entries, o1) = count.multipliedReportingOverflow(by: UInt64(entryBytes))
        let (extra, o2) = pages.multipliedReportingOverflow(by: UInt64(pagePrefix + 4))
        let (sum, o3) = entries.addingReportingOverflow(extra)
        return o1 || o2 || o3 ? nil : sum
    }
}

/// Where a shard's index pages lie in its file: the index frame starts at `indexOffset` (where the
/// data frames end), its frame table right after its prefix, its document ends after the frame table.
public struct IndexLayout: Sendable, Hashable {
    public var indexOffset: UInt64
    public var frameCount: Int
    public var documentCount: Int

    public init(indexOffset: UInt64, frameCount: Int, documentCount: Int) {
        self.indexOffset = indexOffset
        self.frameCount = frameCount
        self.documentCount = documentCount
    }

    /// Entries in `section`.
    public func entries(_ section: IndexSection) -> Int { section == .frameTable ? frameCount : documentCount }

    /// File offset of `section`'s first page.
    public func start(_ section: IndexSection) -> UInt64 {
        let table = indexOffset + UInt64(ShardFormat.indexPrefixSize)
        return section == .frameTable ? table : table + (IndexSection.frameTable.bytes(entries: UInt64(frameCount)) ?? 0)
    }

    /// File offset and size of page `p` of `section`, and the index of its first entry.
    public func page(_ section: IndexSection, _ p: Int) -> (offset: UInt64, bytes: Int, firstEntry: Int, entries: Int) {
        let first = p * section.entriesPerPage
        let entries = min(section.entriesPerPage, entries(section) - first)
        return (start(section) + UInt64(p) * UInt64(section.pageStride), section.pagePrefix + entries * section.entryBytes + 4, first, entries)
    }
}

/// One decoded, checked index page, shared by every reader through ``IndexPageCache``.
///
/// Frame-table pages hold two words an entry (offset; compressed size | CRC-32 << 32); document-end
/// pages hold the end before their first document, then their ends.
public final class IndexPage: Sendable {
    public let section: IndexSection
    /// Index of the page's first entry in its section.
    public let firstEntry: Int
    public let words: ContiguousArray<UInt64>

    init(section: IndexSection, firstEntry: Int, words: ContiguousArray<UInt64>) {
        self.section = section
        self.firstEntry = firstEntry
        self.words = words
    }

    /// Entries on the page.
    public var count: Int { section == .frameTable ? words.count / 2 : words.count - 1 }

    /// Bytes the page holds in memory, for the cache's budget.
    var residentBytes: Int { words.count * 8 + 64 }

    /// Document-end pages: the end of the document before the page's first one.
    public var previousEnd: UInt64 { words[0] }
    /// Document-end pages: the end of the page's `i`-th document.
    public func end(_ i: Int) -> UInt64 { words[i + 1] }
    /// Document-end pages: the end of the page's last document.
    public var lastEnd: UInt64 { words[words.count - 1] }

    /// Frame-table pages: the page's `i`-th entry.
    public func frame(_ i: Int) -> FrameEntry {
        let packed = words[2 * i + 1]
        return FrameEntry(offset: words[2 * i], compressedSize: UInt32(truncatingIfNeeded: packed),
                          checksum: UInt32(truncatingIfNeeded: packed >> 32))
    }

    /// Document-end pages: the page's first document whose end is above `t` (binary search), or
    /// ``count`` when none is.
    public func firstEnd(above t: UInt64) -> Int {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if words[mid + 1] <= t { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Checks page `p` of `section` (its CRC-32, then every entry against the shard's metadata) and
    /// decodes it.
    /// - Throws: `ShardError` naming `path`, the section as the field and the page: checksum
    ///   mismatch, a frame outside the data section, document ends that do not increase or run past
    ///   the token count.
    static func decode(_ bytes: UnsafeRawBufferPointer, section: IndexSection, page p: Int,
                       metadata: ShardMetadata, path: String) throws(ShardError) -> IndexPage {
        let layout = metadata.indexLayout
        let (_, size, first, entries) = layout.page(section, p)
        func fail(_ message: String) -> ShardError {
            ShardError(path: path, field: section.field, "index: \(section.field) page \(p): \(message)")
        }
        guard bytes.count == size, entries > 0 else { throw fail("page of \(bytes.count) bytes, expected \(size)") }
        let stored = bytes.loadLE(size - 4, as: UInt32.self)
        let computed = crc32(UnsafeRawBufferPointer(rebasing: bytes[..<(size - 4)]))
        guard stored == computed else {
            throw fail(String(format32: "checksum mismatch (stored", stored, ", computed", computed))
        }
        func u64(_ at: Int) -> UInt64 { bytes.loadLE(at, as: UInt64.self) }
        func u32(_ at: Int) -> UInt32 { bytes.loadLE(at, as: UInt32.self) }
        var words = ContiguousArray<UInt64>()
        switch section {
        case .frameTable:
            words.reserveCapacity(2 * entries)
            let dataStart = UInt64(ShardFormat.headerFrameSize)
            var expected: UInt64? = first == 0 ? dataStart : nil
            for i in 0 ..< entries {
                let offset = u64(16 * i), compressed = u32(16 * i + 8), checksum = u32(16 * i + 12)
                let k = first + i
                if let expected, offset != expected {
                    throw fail("frame \(k) starts at \(offset), expected \(expected) (right after the previous frame)")
                }
                let (end, overflow) = offset.addingReportingOverflow(UInt64(compressed))
                guard offset >= dataStart, compressed > 0, compressed <= metadata.largestFrame, !overflow,
                      end <= metadata.indexOffset else {
                    throw fail("frame \(k) of \(compressed) bytes at \(offset) must be non-empty, at most \(metadata.largestFrame) bytes (largest_frame) and lie in bytes \(dataStart)…\(metadata.indexOffset)")
                }
                if k == metadata.frameCount - 1, end != metadata.indexOffset {
                    throw fail("the last frame ends at \(end), the index starts at \(metadata.indexOffset)")
                }
                expected = end
                words.append(offset)
                words.append(UInt64(compressed) | UInt64(checksum) << 32)
            }
        case .documentEnds:
            words.reserveCapacity(entries + 1)
            var previous = u64(0)
            guard first != 0 || previous == 0 else { throw fail("the first page's previous end is \(previous), not 0") }
            words.append(previous)
            for i in 0 ..< entries {
                let end = u64(8 + 8 * i)
                guard end > previous, end <= metadata.tokenCount else {
                    throw fail("document \(first + i) ends at \(end), not after \(previous) and within the \(metadata.tokenCount) tokens")
                }
                previous = end
                words.append(end)
            }
            if first + entries == metadata.documentCount, previous != metadata.tokenCount {
                throw fail("the last document ends at \(previous), token_count is \(metadata.tokenCount)")
            }
        }
        return IndexPage(section: section, firstEntry: first, words: words)
    }

    /// CRC-32 of a section's bytes with each page's own CRC-32 left out (the section checksum the
    /// metadata records: a CRC over bytes that end with their own CRC would be a constant).
    static func sectionChecksum(_ bytes: [UInt8], _ section: IndexSection) -> UInt32 {
        var crc: UInt32 = 0
        var at = 0
        while at < bytes.count {
            let end = min(bytes.count, at + section.pageStride)
            crc = withBytes(of: bytes) { crc32(UnsafeRawBufferPointer(rebasing: $0[at ..< end - 4]), continuing: crc) }
            at = end
        }
        return crc
    }

    /// The bytes of a section: its entries cut into pages, each followed by its CRC-32.
    static func encode(frames: [FrameEntry]) -> [UInt8] {
        var w = LittleEndianWriter()
        let per = IndexSection.frameTable.entriesPerPage
        var start = 0
        while start < frames.count {
            let pageStart = w.bytes.count
            for f in frames[start ..< min(frames.count, start + per)] {
                w.append(f.offset)
                w.append(f.compressedSize)
                w.append(f.checksum)
            }
            w.append(crc32(Array(w.bytes[pageStart...])))
            start += per
        }
        return w.bytes
    }

    /// The bytes of the document-end section (see ``encode(frames:)``).
    static func encode(documentEnds ends: [UInt64]) -> [UInt8] {
        var w = LittleEndianWriter()
        let per = IndexSection.documentEnds.entriesPerPage
        var start = 0
        while start < ends.count {
            let pageStart = w.bytes.count
            w.append(start == 0 ? 0 : ends[start - 1])
            for end in ends[start ..< min(ends.count, start + per)] { w.append(end) }
            w.append(crc32(Array(w.bytes[pageStart...])))
            start += per
        }
        return w.bytes
    }
}
