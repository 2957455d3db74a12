import Dispatch
import Foundation
import Testing
import TestSupport
import TokenfeedCurriculum
@testable import TokenfeedEngine
import TokenfeedMixing
import TokenfeedShards
import TokenfeedSystem

/// The persisted bestfit row counts (``BestFitRowStore``): a cache written by one stream serves a
/// fresh one exactly (same rows, nothing counted), and a cache that is corrupt, for another row
/// length or look-ahead, or older than a shard's content is ignored — the rows stay those computed
/// without any cache.
@Suite struct BestFitCacheTests {
    static let sequenceLength = 128
    static let lookahead = 8

    /// Global sequences spread over the whole run (the stream has 200,000): most lie many epochs
    /// into their dataset.
    static let farPositions: [UInt64] = {
        var rng = SplitMix64(seed: 42)
        return (0 ..< 120).map { _ in rng.next() % 200_000 } + [199_999, 150_000, 3]
    }()

    /// The planned rows of sequences `positions`, one cold planner of `stream` walking them in order.
    static func rows(_ stream: GlobalStream, _ positions: [UInt64]) throws -> [(SequenceRecord, [SequencePiece])] {
        var planner = stream.planner()
        var pieces: [SequencePiece] = []
        return try positions.map { i in
            pieces.removeAll()
            let record = try planner.plan(sequence: i, step: 0, appendingTo: &pieces)
            return (record, pieces)
        }
    }

    /// The first few indices where two lists of planned rows differ (the longer's extra rows included).
    static func mismatches(_ a: [(SequenceRecord, [SequencePiece])], _ b: [(SequenceRecord, [SequencePiece])]) -> [Int] {
        let differing = (0 ..< min(a.count, b.count)).filter { a[$0].0 != b[$0].0 || a[$0].1 != b[$0].1 } + Array(min(a.count, b.count) ..< max(a.count, b.count))
        return Array(differing.prefix(5))
    }

    /// Row-count files in `directory`.
    static func cacheFiles(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix("bestfit-rows-") && $0.hasSuffix(".bin") }.sorted().map { directory + "/" + $0 }
    }

    /// A stream over the fixture with a cache directory, whose report lines go to `lines`.
    static func stream(_ curriculum: Curriculum, cache: String?, lines: LockedValue<[String]>? = nil) throws -> GlobalStream {
        var report: (@Sendable (String) -> Void)?
        if let lines { report = { line in lines.withLock { $0.append(line) } } }
        return try GlobalStream(curriculum: curriculum, bestFitCacheDirectory: cache, bestFitCacheReport: report)
    }

    @Test func aCacheWrittenByOneStreamServesAFreshOneExactly() throws {
        let fixture = try EngineFixture()
        let curriculum = try BestFitTests.curriculum(fixture, sequenceLength: Self.sequenceLength, lookahead: Self.lookahead)
        let reference = try Self.rows(try Self.stream(curriculum, cache: nil), Self.farPositions)
        let cache = fixture.dir.sub("cache")

        // A far jump with an empty cache directory counts every shard of every dataset, once, and
        // writes one file per dataset.
        let lines = LockedValue<[String]>([])
        let first = try Self.stream(curriculum, cache: cache, lines: lines)
        #expect(Self.mismatches(try Self.rows(first, Self.farPositions), reference) == [])
        let shards = first.datasets.reduce(0) { $0 + $1.shards.count }
        #expect(first.bestFitCountStatistics.shardsCounted == shards)
        #expect(first.bestFitCountStatistics.shardsFromCache == 0)
        #expect(Self.cacheFiles(cache).count == curriculum.datasets.count)
        #expect(lines.withLock { $0 }.filter { $0.contains("wrote") }.count == curriculum.datasets.count, "\(lines.withLock { $0 })")

        // A fresh stream reads every count and counts nothing, jumping in any order.
        let fresh = try Self.stream(curriculum, cache: cache)
        let order = Array(Self.farPositions.indices.reversed())
        let backwards = try Self.rows(fresh, order.map { Self.farPositions[$0] })
        #expect(Self.mismatches(order.map { reference[$0] }, backwards) == [])
        #expect(fresh.bestFitCountStatistics == BestFitCountStatistics(shards: shards, shardsFromCache: shards,
                                                                        shardsCounted: 0, documentsCounted: 0))
        // and leaves the files as they were.
        let before = try Self.cacheFiles(cache).map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        let again = try Self.stream(curriculum, cache: cache)
        try again.countBestFitRows()
        #expect(try Self.cacheFiles(cache).map { try Data(contentsOf: URL(fileURLWithPath: $0)) } == before)
        #expect(again.bestFitCountStatistics.shardsCounted == 0)
    }

    /// Files for another row length or look-ahead sit side by side: each configuration has its own.
    @Test func rowLengthAndLookaheadHaveTheirOwnFiles() throws {
        let fixture = try EngineFixture()
        let cache = fixture.dir.sub("cache")
        for (length, lookahead) in [(128, 8), (128, 4), (256, 8)] {
            let curriculum = try BestFitTests.curriculum(fixture, sequenceLength: length, lookahead: lookahead)
            try Self.stream(curriculum, cache: cache).countBestFitRows()
        }
        #expect(Self.cacheFiles(cache).count == 3 * 3)
        for (length, lookahead) in [(128, 8), (128, 4), (256, 8)] {
            let curriculum = try BestFitTests.curriculum(fixture, sequenceLength: length, lookahead: lookahead)
            let cached = try Self.stream(curriculum, cache: cache)
            #expect(Self.mismatches(try Self.rows(cached, Self.farPositions), try Self.rows(try Self.stream(curriculum, cache: nil), Self.farPositions)) == [])
            #expect(cached.bestFitCountStatistics.shardsCounted == 0)
        }
    }

    enum Damage: String, CaseIterable, Sendable {
        case flippedByte, truncated, otherLookahead, otherRowLength, emptyFile, notARowFile
    }

    /// A damaged file, or one made for another configuration and put in place of the right one, is
    /// reported and ignored: its dataset is counted again, the rows are those computed without a
    /// cache, and the file is rewritten (a later stream reads it whole).
    @Test(arguments: Damage.allCases)
    func aBadCacheFileIsIgnoredAndRewritten(damage: Damage) throws {
        let fixture = try EngineFixture()
        let curriculum = try BestFitTests.curriculum(fixture, sequenceLength: Self.sequenceLength, lookahead: Self.lookahead)
        let reference = try Self.rows(try Self.stream(curriculum, cache: nil), Self.farPositions)
        let cache = fixture.dir.sub("cache")
        let writer = try Self.stream(curriculum, cache: cache)
        try writer.countBestFitRows()
        let web = curriculum.datasets.firstIndex { $0.name == "web" }!
        let store = BestFitRowStore(directory: cache, rowTokens: Self.sequenceLength + 1, lookahead: Self.lookahead)
        let path = store.path(forDatasetFolder: writer.datasets[web].path)
        #expect(FileManager.default.fileExists(atPath: path))
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let expectedProblem: String
        switch damage {
        case .flippedByte:
            bytes[BestFitRowStore.headerSize + 32] ^= 0x01     // the first entry's row count
            expectedProblem = "checksum mismatch"
        case .truncated:
            bytes.removeLast(7)
            expectedProblem = "truncated"
        case .emptyFile:
            bytes = []
            expectedProblem = "truncated"
        case .notARowFile:
            bytes = Array("sequence_length: 128\n".utf8) + Array(repeating: 0, count: 60)
            expectedProblem = "TFBFROWS"
        case .otherLookahead, .otherRowLength:
            let other = try BestFitTests.curriculum(fixture, sequenceLength: damage == .otherRowLength ? 64 : Self.sequenceLength,
                                                    lookahead: damage == .otherLookahead ? 4 : Self.lookahead, file: "other.yaml")
            let otherCache = fixture.dir.sub("other-cache")
            try Self.stream(other, cache: otherCache).countBestFitRows()
            let otherStore = BestFitRowStore(directory: otherCache, rowTokens: other.sequenceLength + 1, lookahead: damage == .otherLookahead ? 4 : Self.lookahead)
            bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: otherStore.path(forDatasetFolder: writer.datasets[web].path))))
            expectedProblem = damage == .otherLookahead ? "look-ahead 4" : "rows of 65 tokens"
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        let lines = LockedValue<[String]>([])
        let reader = try Self.stream(curriculum, cache: cache, lines: lines)
        #expect(Self.mismatches(try Self.rows(reader, Self.farPositions), reference) == [])
        let report = lines.withLock { $0 }
        #expect(report.contains { $0.contains("ignored") && $0.contains(path) && $0.contains(expectedProblem) }, "\(report)")
        let webShards = reader.datasets[web].shards.count
        #expect(reader.bestFitCountStatistics.shardsCounted == webShards)
        #expect(reader.bestFitCountStatistics.shardsFromCache == reader.bestFitCountStatistics.shards - webShards)

        let later = try Self.stream(curriculum, cache: cache)
        #expect(Self.mismatches(try Self.rows(later, Self.farPositions), reference) == [])
        #expect(later.bestFitCountStatistics.shardsCounted == 0)
    }

    /// A shard rewritten with other documents under the same name no longer matches its cached
    /// count: that shard alone is counted again, and the rows are those of the new documents.
    @Test func aChangedShardIsCountedAgain() throws {
        let fixture = try EngineFixture()
        let curriculum = try BestFitTests.curriculum(fixture, sequenceLength: Self.sequenceLength, lookahead: Self.lookahead)
        let cache = fixture.dir.sub("cache")
        let before = try Self.stream(curriculum, cache: cache)
        let oldRows = try Self.rows(before, Self.farPositions)
        let tiny = curriculum.datasets.firstIndex { $0.name == "tiny" }!
        let oldCount = try #require(before.bestFitRows.rows(dataset: tiny, shard: 1))

        // Same file name, other documents: more of them, longer (so the count changes).
        let docs = SyntheticCorpus.documents(seed: 999, count: 9, vocabulary: 60_000, meanLength: 70)
        try SyntheticCorpus.writeShard(docs, path: before.datasets[tiny].shards[1].path, width: .uint16, vocabulary: 65_536,
                                       tokensPerFrame: 50)
        let reference = try Self.rows(try Self.stream(curriculum, cache: nil), Self.farPositions)
        #expect(!Self.mismatches(reference, oldRows).isEmpty, "the change must move rows for the test to mean anything")

        let lines = LockedValue<[String]>([])
        let after = try Self.stream(curriculum, cache: cache, lines: lines)
        #expect(Self.mismatches(try Self.rows(after, Self.farPositions), reference) == [])
        #expect(after.bestFitCountStatistics.shardsCounted == 1)
        #expect(try #require(after.bestFitRows.rows(dataset: tiny, shard: 1)) != oldCount)
        #expect(lines.withLock { $0 }.contains { $0.contains("1 of 3 shards") }, "\(lines.withLock { $0 })")
        let later = try Self.stream(curriculum, cache: cache)
        #expect(Self.mismatches(try Self.rows(later, Self.farPositions), reference) == [])
        #expect(later.bestFitCountStatistics.shardsCounted == 0)
    }

    /// The same change caught from the key alone: a cached entry for the old content, with a valid
    /// file checksum, is not used for the new content.
    @Test func aShardKeyChangesWithTheDocumentLengths() throws {
        let dir = TemporaryDirectory("tokenfeed-bestfit-key")
        let path = dir.sub("a.zst")
        let documents: [[UInt32]] = [[1, 2, 3], [4, 5], [6]]
        try SyntheticCorpus.writeShard(documents, path: path, vocabulary: 16, tokensPerFrame: 4)
        let key = try BestFitShardKey.of(try ShardReader(path: path))
        #expect(key == (try BestFitShardKey.of(try ShardReader(path: path))))
        // Same tokens, same frames, other document boundaries.
        try SyntheticCorpus.writeShard([[1, 2], [3, 4, 5], [6]], path: path, vocabulary: 16, tokensPerFrame: 4)
        let moved = try BestFitShardKey.of(try ShardReader(path: path))
        #expect(moved.tokenCount == key.tokenCount && moved.documentCount == key.documentCount
                && moved.frameTableChecksum == key.frameTableChecksum)
        #expect(moved != key)
        // A shard replaced after it was opened: its pages and frames are refused, naming the file
        // (its key is the metadata the process opened, whose rows it would count).
        let opened = try ShardReader(path: path)
        try SyntheticCorpus.writeShard(documents + [[7, 8, 9]], path: path, vocabulary: 16, tokensPerFrame: 4)
        let error = #expect(throws: ShardError.self) { _ = try opened.documentEnd(0) }
        #expect(error?.path == path && error?.problem.contains("changed since the shard was opened") == true, "\(String(describing: error))")
    }

    /// Planners of one stream jumping at once, and streams of two "processes" sharing one cache
    /// directory and writing it at the same time, all get the uncached rows; what they leave in the
    /// directory is whole and serves a fresh stream.
    @Test func concurrentPlannersAndStreamsShareTheCache() throws {
        let fixture = try EngineFixture()
        let curriculum = try BestFitTests.curriculum(fixture, sequenceLength: Self.sequenceLength, lookahead: Self.lookahead)
        let reference = try Self.rows(try Self.stream(curriculum, cache: nil), Self.farPositions)
        let cache = fixture.dir.sub("cache")
        let streams = [try Self.stream(curriculum, cache: cache), try Self.stream(curriculum, cache: cache)]
        let failedThreads = LockedValue(0)
        DispatchQueue.concurrentPerform(iterations: 6) { t in
            let stream = streams[t % 2]
            var rng = SplitMix64(seed: UInt64(t))
            let order = Array(Self.farPositions.indices).shuffled(using: &rng)
            guard let got = try? Self.rows(stream, order.map { Self.farPositions[$0] }) else {
                failedThreads.withLock { $0 += 1 }
                return
            }
            if !Self.mismatches(got, order.map { reference[$0] }).isEmpty { failedThreads.withLock { $0 += 1 } }
        }
        #expect(failedThreads.withLock { $0 } == 0)
        #expect(Self.cacheFiles(cache).count == curriculum.datasets.count, "no temporary file is left: \(Self.cacheFiles(cache))")
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache).count == curriculum.datasets.count)

        let fresh = try Self.stream(curriculum, cache: cache)
        let mismatchesFromCache = LockedValue(0)
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            guard let got = try? Self.rows(fresh, Array(Self.farPositions.dropFirst(t * 10))) else {
                mismatchesFromCache.withLock { $0 += 1 }
                return
            }
            if !Self.mismatches(got, Array(reference.dropFirst(t * 10))).isEmpty { mismatchesFromCache.withLock { $0 += 1 } }
        }
        #expect(mismatchesFromCache.withLock { $0 } == 0)
        #expect(fresh.bestFitCountStatistics.shardsCounted == 0)
    }

    /// The background pass a daemon starts at READY (``BestFitBackgroundCount``), racing planners that
    /// jump far: the planners get the uncached rows (they take over shards the pass is counting rather
    /// than wait), every shard is counted once in all, and the pass leaves whole files that serve a
    /// fresh stream without counting.
    @Test func theBackgroundCountRacesPlannersAndFillsTheCache() throws {
        let fixture = try EngineFixture()
        let curriculum = try BestFitTests.curriculum(fixture, sequenceLength: Self.sequenceLength, lookahead: Self.lookahead)
        let reference = try Self.rows(try Self.stream(curriculum, cache: nil), Self.farPositions)
        let cache = fixture.dir.sub("cache")
        let stream = try Self.stream(curriculum, cache: cache)
        let outcome = LockedValue<BestFitBackgroundCount.Outcome?>(nil)
        let pass = try #require(BestFitBackgroundCount.start(stream: stream, threads: 3) { result in outcome.withLock { $0 = result } })
        _ = pass
        let failedThreads = LockedValue(0)
        DispatchQueue.concurrentPerform(iterations: 3) { t in
            var rng = SplitMix64(seed: UInt64(t + 10))
            let order = Array(Self.farPositions.indices).shuffled(using: &rng)
            guard let got = try? Self.rows(stream, order.map { Self.farPositions[$0] }),
                  Self.mismatches(got, order.map { reference[$0] }).isEmpty else {
                failedThreads.withLock { $0 += 1 }
                return
            }
        }
        #expect(failedThreads.withLock { $0 } == 0)
        let shards = stream.datasets.reduce(0) { $0 + $1.shards.count }
        #expect(waitUntil(seconds: 60) { outcome.withLock { $0 } != nil })
        let done = try #require(outcome.withLock { $0 })
        #expect(!done.cancelled && done.firstError == nil && done.shards == shards)
        // The pass's outcome is a snapshot at its end, when a planner may still be counting a shard it
        // took over; once the planners (above) and the pass are both done, every shard was counted once.
        #expect(done.statistics.shardsCounted <= shards)
        #expect(stream.bestFitCountStatistics == BestFitCountStatistics(shards: shards, shardsFromCache: 0, shardsCounted: shards,
                                                          documentsCounted: Int(stream.datasets.reduce(UInt64(0)) { $0 + $1.documentCount })),
                "each shard counted once, by the pass or by a planner")
        #expect(Self.cacheFiles(cache).count == curriculum.datasets.count)
        let fresh = try Self.stream(curriculum, cache: cache)
        #expect(Self.mismatches(try Self.rows(fresh, Self.farPositions), reference) == [])
        #expect(fresh.bestFitCountStatistics.shardsCounted == 0)

        // A pass over a complete cache only loads it.
        let loaded = LockedValue<BestFitBackgroundCount.Outcome?>(nil)
        _ = BestFitBackgroundCount.start(stream: try Self.stream(curriculum, cache: cache), threads: 1) { result in loaded.withLock { $0 = result } }
        #expect(waitUntil(seconds: 60) { loaded.withLock { $0 } != nil })
        #expect(loaded.withLock { $0 }?.statistics == BestFitCountStatistics(shards: shards, shardsFromCache: shards, shardsCounted: 0, documentsCounted: 0))
    }

    /// An unwritable cache directory is reported; the rows are unaffected.
    @Test func anUnwritableCacheDirectoryOnlyCostsTheCache() throws {
        let fixture = try EngineFixture()
        let curriculum = try BestFitTests.curriculum(fixture, sequenceLength: Self.sequenceLength, lookahead: Self.lookahead)
        let blocker = fixture.dir.sub("file")
        try Data("not a directory".utf8).write(to: URL(fileURLWithPath: blocker))
        let lines = LockedValue<[String]>([])
        let stream = try Self.stream(curriculum, cache: blocker + "/cache", lines: lines)
        #expect(Self.mismatches(try Self.rows(stream, Self.farPositions), try Self.rows(try Self.stream(curriculum, cache: nil), Self.farPositions)) == [])
        #expect(lines.withLock { $0 }.contains { $0.contains("cannot write") }, "\(lines.withLock { $0 })")
    }
}

/// Polls `condition` every 10 ms for up to `seconds`; whether it held.
private func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
    while !condition() {
        if DispatchTime.now().uptimeNanoseconds > deadline { return false }
        usleep(10_000)
    }
    return true
}
