import Foundation
import Testing
import TestSupport
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedMixing
import TokenfeedShards
import TokenfeedSystem

/// `--order nanotron`'s blend counts persisted in a cache directory (``NanotronBlendStore``, issue
/// 10.3): what is read back equals what is computed, damage is detected and recomputed, and a
/// second open reads instead of computing.
@Suite struct NanotronBlendStoreTests {
    /// Weights as a nanotron file writes them: a few positive float64 values, some tiny.
    func randomWeights(_ random: inout SplitMix64) -> [Double] {
        let n = Int.random(in: 1 ... 12, using: &random)
        return (0 ..< n).map { _ in Double.random(in: 0.000_1 ... 1, using: &random) * (Bool.random(using: &random) ? 1 : 0.01) }
    }

    /// A line collector for a store's reports.
    final class Lines: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: [String] = []
        func add(_ line: String) { lock.withLock { stored.append(line) } }
        var all: [String] { lock.withLock { stored } }
    }

    @Test func countsReadBackEqualFreshlyComputedOnes() throws {
        let dir = TemporaryDirectory("tokenfeed-blend-store")
        var random = SplitMix64(seed: 0x10_3)
        for trial in 0 ..< 24 {
            let written = randomWeights(&random)
            let interval = UInt64.random(in: 1 ... 300, using: &random)
            let samples = UInt64.random(in: 0 ... 20_000, using: &random)
            let store = NanotronBlendStore(directory: dir.sub("cache\(trial % 3)"))
            var computed = NanotronBlend(written: written, checkpointInterval: interval)
            _ = computed.counts(beforeSample: samples)
            store.store(computed)
            #expect(store.written == 1)

            var cached = NanotronBlend(written: written, checkpointInterval: interval)
            let read = try #require(store.storedCounts(for: cached), "trial \(trial)")
            #expect(read == computed.storedCounts, "trial \(trial)")
            #expect(cached.adopt(storedCounts: read) == (read.count > 1))
            // Every answer the cached blend gives is the computed one's, without greedy checkpoints.
            var fresh = NanotronBlend(written: written, checkpointInterval: interval)
            for _ in 0 ..< 16 {
                let j = UInt64.random(in: 0 ... samples, using: &random)
                let a = cached.source(ofSample: j), b = fresh.source(ofSample: j)
                #expect(a.dataset == b.dataset && a.sample == b.sample, "trial \(trial) sample \(j)")
                #expect(cached.counts(beforeSample: j) == fresh.counts(beforeSample: j))
            }
            #expect(cached.checkpointsComputed == 0, "trial \(trial)")
            // Another interval or other weights are another file.
            #expect(store.path(weights: computed.weights, interval: interval) != store.path(weights: computed.weights, interval: interval + 1))
            #expect(store.storedCounts(for: NanotronBlend(written: written + [0.5], checkpointInterval: interval)) == nil)
        }
    }

    @Test func aDamagedByteIsDetectedAndTheCountsComputedAgain() throws {
        let dir = TemporaryDirectory("tokenfeed-blend-damage")
        let written = [0.3, 0.011, 0.25, 0.4, 0.039]
        var computed = NanotronBlend(written: written, checkpointInterval: 100)
        _ = computed.counts(beforeSample: 1_050)
        let lines = Lines()
        let store = NanotronBlendStore(directory: dir.path, report: lines.add)
        store.store(computed)
        let path = store.path(weights: computed.weights, interval: 100)
        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(good.count == 32 + 8 * 5 + 11 * 5 * 8 + 4)
        // Every byte, one bit flipped: the header, the weights, the counts, the checksum.
        for offset in 0 ..< good.count {
            var bad = good
            bad[offset] ^= 0x10
            try bad.write(to: URL(fileURLWithPath: path))
            let before = store.rejected
            #expect(store.storedCounts(for: NanotronBlend(written: written, checkpointInterval: 100)) == nil, "byte \(offset)")
            #expect(store.rejected == before + 1, "byte \(offset)")
        }
        #expect(lines.all.last?.contains("checksum mismatch") == true)
        // A truncated file, and a count changed with its checksum fixed (the monotone/sum checks).
        try good.prefix(good.count - 9).write(to: URL(fileURLWithPath: path))
        #expect(store.storedCounts(for: NanotronBlend(written: written, checkpointInterval: 100)) == nil)
        var forged = good
        forged[32 + 40 + 5 * 8 * 3] &+= 1          // dataset 0's count at checkpoint 3
        let crc = forged.prefix(forged.count - 4).withUnsafeBytes { crc32($0) }
        withUnsafeBytes(of: crc.littleEndian) { forged.replaceSubrange((forged.count - 4)..., with: $0) }
        try forged.write(to: URL(fileURLWithPath: path))
        #expect(store.storedCounts(for: NanotronBlend(written: written, checkpointInterval: 100)) == nil)
        #expect(lines.all.last?.contains("stored counts 3 sum to") == true, "\(lines.all.last ?? "")")

        // An order over a damaged file computes the counts, rewrites the file, and reads it next time.
        let curriculum = try scaledSmolLM3(dir)
        let uncached = NanotronOrder(curriculum: curriculum, checkpointInterval: 16)
        let stores = NanotronBlendStore(directory: dir.sub("order"), report: lines.add)
        _ = NanotronOrder(curriculum: curriculum, checkpointInterval: 16, countCache: stores)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.sub("order")).filter { $0.hasSuffix(".counts") }
        #expect(files.count == 3)
        for file in files {
            var bytes = try Data(contentsOf: URL(fileURLWithPath: dir.sub("order") + "/" + file))
            bytes[bytes.count / 2] ^= 1
            try bytes.write(to: URL(fileURLWithPath: dir.sub("order") + "/" + file))
        }
        let rejectedBefore = stores.rejected, writtenBefore = stores.written
        let repaired = NanotronOrder(curriculum: curriculum, checkpointInterval: 16, countCache: stores)
        #expect(stores.rejected == rejectedBefore + 3)
        #expect(repaired.checkpointsComputed == uncached.checkpointsComputed)
        #expect(stores.written == writtenBefore + 3)
        let again = NanotronOrder(curriculum: curriculum, checkpointInterval: 16, countCache: stores)
        #expect(again.checkpointsComputed == 0)
        #expect(stores.rejected == rejectedBefore + 3)
    }

    @Test func aSecondOpenReadsTheCountsAndServesTheSameOrder() throws {
        let dir = TemporaryDirectory("tokenfeed-blend-order")
        let curriculum = try scaledSmolLM3(dir)
        var uncached = NanotronOrder(curriculum: curriculum, checkpointInterval: 16)
        #expect(uncached.checkpointsComputed > 0)
        let lines = Lines()
        let store = NanotronBlendStore(directory: dir.sub("cache"), report: lines.add)
        var first = NanotronOrder(curriculum: curriculum, checkpointInterval: 16, countCache: store)
        #expect(first.checkpointsComputed == uncached.checkpointsComputed)
        #expect(store.written == 3 && store.storedCountsRead == 0)
        var second = NanotronOrder(curriculum: curriculum, checkpointInterval: 16, countCache: store)
        #expect(second.checkpointsComputed == 0)
        #expect(store.written == 3 && store.storedCountsRead > 0 && store.rejected == 0)
        #expect(lines.all.filter { $0.contains(": read ") }.count == 3)
        #expect(second.carry == uncached.carry && second.drawn == uncached.drawn && second.drawnBefore == uncached.drawnBefore)
        var a = NanotronWalker(), b = NanotronWalker(), c = NanotronWalker()
        for i in 0 ..< uncached.totalSequences {
            let expected = uncached.source(ofSequence: i, walker: &a)
            #expect(first.source(ofSequence: i, walker: &b) == expected)
            #expect(second.source(ofSequence: i, walker: &c) == expected)
        }
    }

    /// The SmolLM3 stage-3 file scaled down to 6-sequence steps (as NanotronOrderTests).
    func scaledSmolLM3(_ dir: TemporaryDirectory) throws -> Curriculum {
        var text = try String(contentsOfFile: Fixtures.path("curricula/smollm3/stage3_9T_11T.yaml"), encoding: .utf8)
        for (from, to) in [("start_training_step: 3450001", "start_training_step: 41"), ("start_training_step: 4198001", "start_training_step: 67"),
                           ("train_steps: 4720000", "train_steps: 90"), ("  dp: 192", "  dp: 2")] {
            #expect(text.contains(from))
            text = text.replacingOccurrences(of: from, with: to)
        }
        let path = dir.sub("stage3.yaml")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        var curriculum = try CurriculumLoader.load(path: path, dataRoot: nil)
        curriculum.order = .nanotron
        return curriculum
    }
}
