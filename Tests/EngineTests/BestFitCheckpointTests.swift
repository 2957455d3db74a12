import Foundation
import Testing
import TestSupport
@testable import TokenfeedEngine
import TokenfeedMixing
import TokenfeedShards
import TokenfeedSystem

/// Bestfit row lookup through checkpoints (``BestFitCheckpoints``): finding row `k` from the last
/// checkpoint before it gives exactly the row that packing the shard from its first group gives —
/// for random rows in any order, walking forwards across checkpoints, for any spacing, and with
/// checkpoints read back from the cache directory. A damaged checkpoint record is reported, never
/// used, and its file rewritten.
@Suite struct BestFitCheckpointTests {
    static let rowTokens = 65
    static let lookahead = 8
    /// A spacing no shard reaches: no checkpoints, every lookup packs its shard from group 0 (the replay).
    static let noCheckpoints = 1 << 40

    /// A dataset of three shards of 3,000, 17 and 2,001 documents of 1…80 tokens (375, 3 and 251 groups),
    /// opened without a manifest.
    static func folder(_ dir: TemporaryDirectory) throws -> DatasetFolder {
        let path = dir.sub("many", create: true)
        for (i, count) in [3000, 17, 2001].enumerated() {
            let documents = SyntheticCorpus.documents(seed: UInt64(70 + i), count: count, vocabulary: 50_000, meanLength: 40)
            _ = try SyntheticCorpus.writeShard(documents, path: path + "/\(i).zst", width: .uint16, vocabulary: 50_000, tokensPerFrame: 1024)
        }
        return try DatasetFolder.open(path: path, report: { _ in })
    }

    /// One planned row: its pieces, epoch and padding.
    struct Row: Equatable {
        var pieces: [SequencePiece]
        var epoch: UInt64
        var padded: Int
    }

    /// Rows `positions` of `folder`, planned in order by one planner over `cache`.
    static func rows(_ folder: DatasetFolder, _ cache: BestFitRowCache, _ positions: [UInt64]) throws -> [Row] {
        try rowsAndWork(folder, cache, positions).rows
    }

    /// Rows `positions` of `folder`, planned in order by one planner over `cache`, and the most
    /// groups one lookup packed.
    static func rowsAndWork(_ folder: DatasetFolder, _ cache: BestFitRowCache, _ positions: [UInt64]) throws -> (rows: [Row], mostGroups: Int) {
        var rows = BestFitDatasetRows(dataset: 0, name: "many", folder: folder, seed: 11, rowTokens: rowTokens,
                                      lookahead: lookahead, cache: cache)
        var pieces: [SequencePiece] = []
        var most = 0
        let planned = try positions.map { k in
            pieces.removeAll()
            let before = rows.groupsPacked
            let (epoch, padded) = try rows.row(k, appendingTo: &pieces)
            most = max(most, rows.groupsPacked - before)
            return Row(pieces: pieces, epoch: epoch, padded: padded)
        }
        return (planned, most)
    }

    /// Random rows over three epochs, in random order, then runs of consecutive rows from random starts.
    static func positions(epochRows: UInt64, seed: UInt64) -> [UInt64] {
        var rng = SplitMix64(seed: seed)
        var positions = (0 ..< 300).map { _ in rng.next() % (3 * epochRows) }
        for _ in 0 ..< 4 {
            let start = rng.next() % (3 * epochRows)
            positions += (start ..< start + 150)
        }
        return positions + [0, epochRows - 1, epochRows, 3 * epochRows - 1]
    }

    static func epochRows(_ folder: DatasetFolder) throws -> UInt64 {
        let cache = BestFitRowCache(folders: [folder], rowTokens: rowTokens, lookahead: lookahead)
        try cache.countAll()
        return (0 ..< folder.shards.count).reduce(0) { $0 + cache.rows(dataset: 0, shard: $1)! }
    }

    @Test(arguments: [1, 2, 7, 64])
    func directLookupEqualsReplay(groupsPerCheckpoint: Int) throws {
        let dir = TemporaryDirectory("tokenfeed-checkpoints")
        let folder = try Self.folder(dir)
        let positions = Self.positions(epochRows: try Self.epochRows(folder), seed: UInt64(groupsPerCheckpoint))
        let (replay, replayWork) = try Self.rowsAndWork(folder, BestFitRowCache(folders: [folder], rowTokens: Self.rowTokens, lookahead: Self.lookahead,
                                                                                groupsPerCheckpoint: Self.noCheckpoints), positions)
        let cache = BestFitRowCache(folders: [folder], rowTokens: Self.rowTokens, lookahead: Self.lookahead,
                                    groupsPerCheckpoint: groupsPerCheckpoint)
        let (direct, directWork) = try Self.rowsAndWork(folder, cache, positions)
        let differing = positions.indices.filter { replay[$0] != direct[$0] }
        #expect(differing.isEmpty, "rows \(differing.prefix(5).map { positions[$0] }) differ")
        // A lookup packs at most the K groups from its checkpoint, and the row's group once more;
        // the replay packs up to every group of a shard before the row.
        #expect(directWork <= groupsPerCheckpoint + 1, "a lookup packed \(directWork) groups")
        #expect(replayWork > 100)
        // The shards do have checkpoints: 375 groups of the first shard, one every K.
        #expect(try cache.checkpoints(dataset: 0, shard: 0).count == 374 / groupsPerCheckpoint)
        #expect(try cache.checkpoints(dataset: 0, shard: 1).count == 2 / groupsPerCheckpoint)
    }

    /// Checkpoints written to the cache directory serve a fresh process the same rows without
    /// packing any shard whole; a damaged checkpoint record is reported, replaced by packing the
    /// shard again, and the file rewritten whole (a later reader has nothing to report).
    @Test func persistedCheckpointsAreCheckedAndRewrittenWhenDamaged() throws {
        let dir = TemporaryDirectory("tokenfeed-checkpoints")
        let folder = try Self.folder(dir)
        let positions = Self.positions(epochRows: try Self.epochRows(folder), seed: 5)
        let replay = try Self.rows(folder, BestFitRowCache(folders: [folder], rowTokens: Self.rowTokens, lookahead: Self.lookahead,
                                                           groupsPerCheckpoint: Self.noCheckpoints), positions)
        let store = BestFitRowStore(directory: dir.sub("cache"), rowTokens: Self.rowTokens, lookahead: Self.lookahead, groupsPerCheckpoint: 3)
        func cache(_ lines: LockedValue<[String]>) -> BestFitRowCache {
            BestFitRowCache(folders: [folder], rowTokens: Self.rowTokens, lookahead: Self.lookahead, store: store,
                            report: { line in lines.withLock { $0.append(line) } })
        }
        let writerLines = LockedValue<[String]>([])
        try cache(writerLines).countAll()
        #expect(writerLines.withLock { $0 }.contains { $0.contains("wrote") })

        let path = store.path(forDatasetFolder: folder.path)
        let entries = try #require(try store.load(path: path))
        #expect(entries.values.map(\.checkpointCount).sorted() == [0, 250 / 3, 374 / 3])

        let freshLines = LockedValue<[String]>([])
        let fresh = cache(freshLines)
        #expect(try Self.rows(folder, fresh, positions) == replay)
        #expect(fresh.statistics.shardsCounted == 0)
        #expect(freshLines.withLock { $0 }.isEmpty, "\(freshLines.withLock { $0 })")

        // Flip one byte of a checkpoint value of the first shard's record.
        let first = try #require(entries.values.filter { $0.checkpointCount > 0 }.min { $0.checkpointOffset < $1.checkpointOffset })
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[Int(first.checkpointOffset) + BestFitRowStore.keySize + 8 * 10] ^= 0x04
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        let damagedLines = LockedValue<[String]>([])
        let damaged = cache(damagedLines)
        #expect(try Self.rows(folder, damaged, positions) == replay)
        let report = damagedLines.withLock { $0 }
        #expect(report.contains { $0.contains("ignored") && $0.contains(path) && $0.contains("checksum mismatch") }, "\(report)")
        #expect(report.contains { $0.contains("wrote \(path)") }, "\(report)")

        let laterLines = LockedValue<[String]>([])
        let later = cache(laterLines)
        #expect(try Self.rows(folder, later, positions) == replay)
        #expect(laterLines.withLock { $0 }.isEmpty, "\(laterLines.withLock { $0 })")
    }
}
