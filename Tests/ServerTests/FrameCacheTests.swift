import Dispatch
import Foundation
import Testing
import TestSupport
import TokenfeedClient
import TokenfeedEngine
import TokenfeedProtocol
import TokenfeedServer
import TokenfeedShards

/// The daemon's sessions share one frame cache (issue 9.6): a frame both sessions' rows touch is
/// decompressed once, and a session that does not read cannot starve the others of cache slots.
@Suite struct FrameCacheTests {
    /// The distinct frames `slice`'s rows touch over `steps` steps, planned offline.
    static func framesTouched(_ stream: GlobalStream, slice: RankSlice, steps: UInt64) throws -> Set<FrameKey> {
        var planner = stream.planner()
        var keys = Set<FrameKey>()
        var pieces: [SequencePiece] = []
        for step in 0 ..< steps {
            for j in 0 ..< slice.batchSize {
                pieces.removeAll()
                let record = try planner.plan(sequence: slice.sequence(step: step, j), step: step, appendingTo: &pieces)
                for piece in pieces {
                    let metadata = stream.datasets[Int(record.dataset)].shards[Int(piece.shard)].metadata
                    for f in metadata.frame(containingToken: piece.offset) ... metadata.frame(containingToken: piece.offset + UInt64(piece.length) - 1) {
                        keys.insert(FrameKey(dataset: Int(record.dataset), shard: Int(piece.shard), frame: f))
                    }
                }
            }
        }
        return keys
    }

    /// Two ranks read a whole (short) run over the same shards: the daemon decompresses each frame
    /// their rows touch exactly once, although each rank's rows touch most of the frames.
    @Test func twoSessionsDecompressEachFrameOnce() throws {
        let fixture = try ServerFixture(end: "20K")
        var options = fixture.options()
        options.preloadBytes = 64 << 20      // every frame of the fixture fits: nothing is evicted
        let server = try fixture.startServer(options)
        defer { server.shutdown() }
        let clients = try (0 ..< 2).map { r in
            try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: UInt32(r), worldSize: 2, batchSize: 4, credits: 4)
        }
        var served = [0, 0]
        var open = [true, true]
        while open.contains(true) {
            for r in 0 ..< 2 where open[r] {
                if let batch = try clients[r].next() {
                    #expect(batch.step == UInt64(served[r]))
                    served[r] += 1
                } else { open[r] = false }
            }
        }
        let steps = fixture.stream.plan.totalSequences / 8
        #expect(served == [Int(steps), Int(steps)])
        let perRank = try (0 ..< 2).map { try Self.framesTouched(fixture.stream, slice: RankSlice(rank: $0, worldSize: 2, batchSize: 4), steps: steps) }
        let union = perRank[0].union(perRank[1])
        #expect(perRank[0].count + perRank[1].count > union.count, "the ranks' rows share frames")
        #expect(server.frameCache.framesDecompressed.load(ordering: .relaxed) == union.count,
                "decompressed \(server.frameCache.framesDecompressed.load(ordering: .relaxed)) frames for \(union.count) distinct frames touched")
    }

    /// A cache of a few frames, a session that never reads (its ring full, its look-ahead holding
    /// every slot), and another session far from it in the stream (other frames): the stalled one
    /// drops its look-ahead, the other is served exactly the offline batches.
    @Test func aStalledSessionDoesNotStarveAnother() throws {
        let fixture = try ServerFixture()
        var options = fixture.options()
        let largest = fixture.stream.datasets.flatMap(\.shards).map { Preloader.largestFrameBytes($0) + $0.largestFrame + 128 }.max() ?? 0
        options.preloadBytes = 3 * largest
        let server = try fixture.startServer(options)
        defer { server.shutdown() }
        #expect(server.frameCache.slotCount <= 3)
        let stalled = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 1, worldSize: 2, batchSize: 4, credits: 1)
        defer { stalled.close() }
        // Its packer fills the ring (4 batches) and plans ahead, then waits for ring space.
        #expect(eventually(within: 10) { (server.sessionProgress().first?.progress.framesPlanned.load(ordering: .relaxed) ?? 0) > 4 })
        let slice = RankSlice(rank: 0, worldSize: 2, batchSize: 4)
        let done = DispatchSemaphore(value: 0)
        let result = LockedBox<[UInt64]>([])
        let far = Cursor(fingerprint: server.stream.fingerprint, nextStep: 200, worldSize: 2, batchSize: 4)
        let good = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 2, batchSize: 4, cursor: far, credits: 2)
        let reader = LockedBox(good)     // used by the reader thread only, until `done`
        DispatchQueue.global().async {
            let good = reader.get()
            var steps: [UInt64] = []
            for _ in 0 ..< 20 {
                guard let batch = try? good.next(), (try? fixture.reference(step: batch.step, slice: slice).tokens) == batch.rows.map(\.tokens) else { break }
                steps.append(batch.step)
            }
            result.set(steps)
            done.signal()
        }
        let finished = done.wait(timeout: .now() + 60) == .success
        #expect(finished, "the good session was starved of cache slots")
        if !finished { server.shutdown() }
        #expect(result.get() == Array(200 ..< 220))
        good.close()
    }
}

/// A value shared with a background reader.
final class LockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func set(_ new: Value) { lock.lock(); value = new; lock.unlock() }
    func get() -> Value { lock.lock(); defer { lock.unlock() }; return value }
}
