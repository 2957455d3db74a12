import Testing
import TestSupport
import TokenfeedClient
import TokenfeedEngine
import TokenfeedServer

/// The preloader's look-ahead is bounded by steps (issue 9.5): a session's first batch is served after
/// planning a few steps, not thousands of frames.
@Suite struct LookaheadTests {
    /// With a budget that holds every frame of the fixture (where the former 4,096-entry look-ahead
    /// planned 4,096 frame requests before the first batch), the daemon plans at most the default
    /// look-ahead's steps before the first batch, and keeps serving the right batches after it.
    @Test func firstBatchIsServedAfterPlanningAFewSteps() throws {
        let fixture = try ServerFixture()
        var options = fixture.options()
        options.preloadBytes = 64 << 20
        let server = try fixture.startServer(options)
        defer { server.shutdown() }
        let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 2, batchSize: 4, credits: 2)
        defer { client.close() }
        let first = try #require(try client.next())
        #expect(first.step == 0)
        let progress = try #require(server.sessionProgress().first?.progress)
        let steps = progress.stepsPlannedBeforeFirstBatch.load(ordering: .acquiring)
        let frames = progress.framesPlannedBeforeFirstBatch.load(ordering: .relaxed)
        let lookahead = Preloader.Lookahead.default
        #expect(steps >= 1 && steps <= lookahead.steps + 1, "planned \(steps) steps before the first batch")
        // The demand holds `lookahead.frames` entries besides those of step 0 (4 rows of 65 tokens: a few frames each).
        #expect(frames >= 1 && frames <= lookahead.frames + 4 * 4, "planned \(frames) frame requests before the first batch")
        // The look-ahead keeps up after the first batch: the next batches are the offline ones.
        let slice = RankSlice(rank: 0, worldSize: 2, batchSize: 4)
        for step in UInt64(1) ... 7 {
            let batch = try #require(try client.next())
            #expect(batch.step == step)
            #expect(batch.rows.map(\.tokens) == (try fixture.reference(step: step, slice: slice)).tokens)
        }
    }
}
