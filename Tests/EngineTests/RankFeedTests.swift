import Foundation
import Testing
import TestSupport
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedShards

@Suite struct RankFeedTests {
    /// Batches through the preloader and the ring equal the directly assembled ones, from any start
    /// step, with a budget of two frames and 60 datasets.
    @Test func feedMatchesDirectAssemblyUnderATinyBudget() throws {
        let fixture = try EngineFixture(extraDatasets: 57)
        let curriculum = try fixture.curriculum(extra: 57)
        #expect(curriculum.datasets.count == 60)
        let stream = try GlobalStream(curriculum: curriculum)
        try EngineFixture.expectFeedMatchesDirectAssembly(stream, slice: RankSlice(rank: 1, worldSize: 2, batchSize: 4),
                                                          starts: [(0, 1), (13, 64 << 10), (40, 64 << 20)])
    }

    /// The stream ends cleanly after the curriculum's last step.
    @Test func feedEndsAtTheEndOfTheCurriculum() throws {
        let fixture = try EngineFixture()
        let stream = try GlobalStream(curriculum: try fixture.curriculum(end: "2560"))   // 40 sequences
        let feed = RankFeed(stream: stream, slice: RankSlice(rank: 0, worldSize: 1, batchSize: 8), startStep: 0)
        #expect(feed.stepCount == 5)
        feed.start()
        var steps: [UInt64] = []
        while let slot = feed.ring.acquireFull() {
            steps.append(PackedBatch(layout: feed.layout, bytes: slot.payload).step)
            feed.ring.release(slot)
        }
        #expect(steps == [0, 1, 2, 3, 4])
        #expect(feed.failure == nil)
    }

    /// A corrupt frame stops the feed with an error naming the shard and frame, after every good batch.
    @Test func aCorruptFrameIsReportedNotServed() throws {
        let fixture = try EngineFixture()
        let curriculum = try fixture.curriculum()
        // Corrupt the code dataset's shard in its third frame.
        let shard = fixture.dataRoot + "/code/part-0.zst"
        let reader = try ShardReader(path: shard)
        let frame = try reader.frameEntry(2)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: shard))
        bytes[Int(frame.offset) + 7] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: shard))
        let stream = try GlobalStream(curriculum: curriculum)
        let feed = RankFeed(stream: stream, slice: RankSlice(rank: 0, worldSize: 1, batchSize: 8), startStep: 0, preloadBytes: 1)
        feed.start()
        var served = 0
        while let slot = feed.ring.acquireFull() { served += 1; feed.ring.release(slot) }
        let failure = try #require(feed.failure)
        #expect(failure.path == shard && failure.frame == 2)
        #expect(served > 0)
    }

    /// A feed made with `packAhead` packs that many steps and no more until `allowPackingAhead()`,
    /// then fills its ring; the batches are the same steps in order either way.
    @Test func packAheadBoundsPackingUntilAllowed() throws {
        let fixture = try EngineFixture()
        let stream = try GlobalStream(curriculum: try fixture.curriculum())
        let feed = RankFeed(stream: stream, slice: RankSlice(rank: 0, worldSize: 1, batchSize: 8), startStep: 3, ringSlots: 8, packAhead: 2)
        feed.start()
        defer { feed.stop() }
        var steps: [UInt64] = []
        for _ in 0 ..< 2 {
            guard let slot = feed.ring.acquireFull() else { Issue.record("the feed closed"); return }
            steps.append(PackedBatch(layout: feed.layout, bytes: slot.payload).step)
            feed.ring.release(slot)
        }
        usleep(300_000)
        #expect(feed.ring.publishedCount == 0, "packed past the allowance of 2 steps")
        feed.allowPackingAhead()
        let deadline = Date().addingTimeInterval(10)
        while feed.ring.publishedCount < 8, Date() < deadline { usleep(1_000) }
        #expect(feed.ring.publishedCount == 8)
        while steps.count < 10, let slot = feed.ring.tryAcquireFull() {
            steps.append(PackedBatch(layout: feed.layout, bytes: slot.payload).step)
            feed.ring.release(slot)
        }
        #expect(steps == Array(3 ..< 13))
    }
}
