import Foundation
import Testing
import TestSupport
@testable import TokenfeedShards
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The dataset manifest: a valid one opens the dataset without reading any shard; a missing, stale
/// (size, modification time, a shard added or removed) or corrupt one is replaced in memory by the
/// shards' own metadata, with a warning naming the dataset and `tokenfeed shard index`, and is never
/// written by the process that opens the dataset.
@Suite struct DatasetManifestTests {
    let dir = TemporaryDirectory("tfman")
    let folder: String

    init() throws {
        folder = dir.sub("ds", create: true)
        for s in 0 ..< 4 {
            let docs = SyntheticCorpus.documents(seed: UInt64(20 + s), count: 40, vocabulary: 9000, meanLength: 20)
            try SyntheticCorpus.writeShard(docs, path: folder + "/p\(s).zst", width: .uint16, vocabulary: 9000, tokensPerFrame: 128)
        }
    }

    var manifestPath: String { folder + "/" + DatasetManifest.fileName }

    func open() throws -> (folder: DatasetFolder, warnings: [String]) {
        let seen = LockedValue<[String]>([])
        let opened = try DatasetFolder.open(path: folder) { line in seen.withLock { $0.append(line) } }
        return (opened, seen.withLock { $0 })
    }

    /// Overwrites `count` bytes at `offset` of `path` in place, keeping its size and modification time.
    static func overwriteKeepingTime(_ path: String, at offset: Int, with bytes: [UInt8]) throws {
        var status = stat()
        #expect(stat(path, &status) == 0)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: Data(bytes))
        try handle.close()
        var times = [status.st_atim, status.st_mtim]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
    }

    @Test func aValidManifestOpensTheDatasetWithoutReadingAnyShard() throws {
        let index = try run(productsFolder + "/tokenfeed", ["shard", "index", folder])
        #expect(index.status == 0 && String(decoding: index.stdout, as: UTF8.self).contains("(4 shards)"), "\(index.stderr)")
        let reference = try open()
        #expect(reference.warnings.isEmpty, "\(reference.warnings)")
        // Break every shard's metadata frame in place (same size, same modification time): only a
        // process that reads the shards notices.
        for s in 0 ..< 4 {
            let path = folder + "/p\(s).zst"
            let size = Int(try ShardReader(path: path).fileSize)
            try Self.overwriteKeepingTime(path, at: size - ShardFormat.footerFrameSize - 8, with: [0xDE, 0xAD, 0xBE, 0xEF])
            #expect(throws: ShardError.self) { try ShardReader(path: path) }
        }
        let fromManifest = try open()
        #expect(fromManifest.warnings.isEmpty)
        #expect(fromManifest.folder.shards.map(\.metadata) == reference.folder.shards.map(\.metadata))
        #expect(try fromManifest.folder.shards[2].tokens(0 ..< 50) == reference.folder.shards[2].tokens(0 ..< 50))
        // Without the manifest, the shards are read and the broken metadata is found.
        try FileManager.default.removeItem(atPath: manifestPath)
        #expect(throws: ShardError.self) { try open() }
    }

    @Test func aMissingManifestIsReportedNotWritten() throws {
        let (opened, warnings) = try open()
        #expect(opened.shards.count == 4)
        #expect(warnings.count == 1 && warnings[0].contains("no tokenfeed.manifest") && warnings[0].contains(folder)
                && warnings[0].contains("tokenfeed shard index \(folder)"), "\(warnings)")
        #expect(!FileManager.default.fileExists(atPath: manifestPath))
    }

    @Test func aStaleManifestIsReportedAndTheChangedShardsRead() throws {
        try SyntheticCorpus.writeManifest(folder: folder)
        let before = try open().folder
        // p1 rewritten with other documents (size and time change); p2 only touched (time changes).
        let docs = SyntheticCorpus.documents(seed: 99, count: 10, vocabulary: 9000, meanLength: 20)
        try SyntheticCorpus.writeShard(docs, path: folder + "/p1.zst", width: .uint16, vocabulary: 9000, tokensPerFrame: 128)
        var times = [timespec(tv_sec: 1_000_000, tv_nsec: 5), timespec(tv_sec: 1_000_000, tv_nsec: 5)]
        #expect(utimensat(AT_FDCWD, folder + "/p2.zst", &times, 0) == 0)
        let (after, warnings) = try open()
        #expect(warnings.count == 1 && warnings[0].contains("is stale") && warnings[0].contains("p1.zst")
                && warnings[0].contains("p2.zst") && warnings[0].contains("tokenfeed shard index"), "\(warnings)")
        #expect(after.shards[1].metadata.documentCount == 10)
        #expect(after.shards[2].metadata == before.shards[2].metadata)
        // A shard removed and one added are stale too.
        try FileManager.default.removeItem(atPath: folder + "/p3.zst")
        try SyntheticCorpus.writeShard(docs, path: folder + "/p4.zst", width: .uint16, vocabulary: 9000, tokensPerFrame: 128)
        let (_, more) = try open()
        #expect(more.count == 1 && more[0].contains("3 shards new or changed, 1 gone: p1.zst, p2.zst, p4.zst, …"), "\(more)")
    }

    @Test func aCorruptManifestIsIgnoredWithAWarning() throws {
        try SyntheticCorpus.writeManifest(folder: folder)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: manifestPath)))
        bytes[bytes.count / 2] ^= 0x20
        try Data(bytes).write(to: URL(fileURLWithPath: manifestPath))
        let (opened, warnings) = try open()
        #expect(opened.shards.count == 4)
        #expect(warnings.count == 1 && warnings[0].contains("manifest: checksum mismatch") && warnings[0].contains("tokenfeed shard index"), "\(warnings)")
        for cut in [0, 10, bytes.count - 5] {
            try Data(bytes.prefix(cut)).write(to: URL(fileURLWithPath: manifestPath))
            #expect(try open().warnings.count == 1, "cut \(cut)")
        }
    }

    /// The bytes an opened value retains, walking its stored properties (strings by their UTF-8
    /// bytes; a collection's elements would count, so any array held would show). A leaf counts
    /// the size of its dynamic type (not of the `Any` box holding it: 32 bytes).
    static func retainedBytes(_ value: Any) -> Int {
        if let text = value as? String { return 16 + text.utf8.count }
        let mirror = Mirror(reflecting: value)
        func size<V>(_: V) -> Int { MemoryLayout<V>.size }
        if mirror.children.isEmpty || mirror.displayStyle == .enum { return _openExistential(value, do: size) }
        return mirror.children.reduce(mirror.displayStyle == .class ? 16 : 0) { $0 + retainedBytes($1.value) }
    }

    /// What a process keeps per shard does not grow with the shard's documents: a shard of 20 and
    /// one of 20,000 documents, opened from their files or from a manifest, retain the same bytes
    /// (no array of frames or ends: index pages live in the bounded page cache, below).
    @Test func perShardMemoryDoesNotGrowWithTheDocumentCount() throws {
        func opened(documents: Int) throws -> [ShardReader] {
            let sub = dir.sub(documents < 100 ? "small" : "large", create: true)      // paths of equal length
            let docs = SyntheticCorpus.documents(seed: 1, count: documents, vocabulary: 9000, meanLength: 3)
            try SyntheticCorpus.writeShard(docs, path: sub + "/m0.zst", width: .uint16, vocabulary: 9000, tokensPerFrame: 4096,
                                           tokenizer: "gpt2")
            try SyntheticCorpus.writeManifest(folder: sub)
            let fromFile = try ShardReader(path: sub + "/m0.zst")
            let fromManifest = try DatasetFolder.open(path: sub, report: { _ in }).shards[0]
            #expect(fromFile.metadata.documentCount == documents && fromManifest.metadata == fromFile.metadata)
            _ = try fromFile.document(containingToken: fromFile.metadata.tokenCount - 1)      // pages read, not kept
            return [fromFile, fromManifest]
        }
        let small = try opened(documents: 20).map(Self.retainedBytes)
        let large = try opened(documents: 20_000).map(Self.retainedBytes)
        #expect(small == large, "retained bytes: \(small) with 20 documents, \(large) with 20,000")
        #expect(large.allSatisfy { $0 < 1024 }, "\(large)")
        #expect(MemoryLayout<ShardMetadata>.size <= 128)
        // The page cache is bounded: pages beyond its budget are dropped, least recently used first.
        let cache = IndexPageCache(capacityBytes: 64 << 10)
        for p in 0 ..< 1000 {
            cache.insert(IndexPage(section: .documentEnds, firstEntry: p * 510, words: ContiguousArray(repeating: 1, count: 511)),
                         for: .init(shard: 1, section: .documentEnds, page: p))
        }
        #expect(cache.residentBytes <= 64 << 10 && cache.pageCount > 0)
        #expect(cache.page(.init(shard: 1, section: .documentEnds, page: 999)) != nil)
        #expect(cache.page(.init(shard: 1, section: .documentEnds, page: 0)) == nil)
    }
}
