import Foundation
import Testing
import TestSupport
import TokenfeedClient
import TokenfeedEngine
import TokenfeedProtocol
import TokenfeedServer

/// Tensor/pipeline-parallel replicas of one data-parallel rank share its session (issue 9.7).
@Suite struct ReplicaTests {
    static let slice = RankSlice(rank: 1, worldSize: 2, batchSize: 3)

    func hello(_ index: UInt16, replicas: UInt16 = 2, credits: UInt32 = 8, cursor: Cursor? = nil, job: String = "tp") -> Hello {
        Hello(rank: 1, worldSize: 2, batchSize: 3, initialCredits: credits, cursor: cursor, jobID: job, replicas: replicas, replicaIndex: index)
    }

    /// Both replicas receive the same Batch frames, which are the rank's offline batches, packed by one feed.
    @Test func replicasReceiveIdenticalBatchesFromOnePackingPass() throws {
        let fixture = try ServerFixture()
        let server = try fixture.startServer()
        defer { server.shutdown() }
        let a = try RawConnection(path: fixture.socketPath)
        a.send(hello(0).encodeFrame(requestID: 1))
        guard case .welcome(let welcomeA)? = try a.nextMessage() else { Issue.record("no Welcome for replica 0"); return }
        let b = try RawConnection(path: fixture.socketPath)
        b.send(hello(1).encodeFrame(requestID: 1))
        guard case .welcome(let welcomeB)? = try b.nextMessage() else { Issue.record("no Welcome for replica 1"); return }
        #expect(welcomeA == welcomeB)
        let sessions = server.sessionProgress().filter { $0.jobID == "tp" }
        #expect(sessions.count == 2 && sessions[0].progress === sessions[1].progress, "one feed for both replicas")
        for step in UInt64(0) ..< 8 {
            guard case .batch(let batchA)? = try a.nextMessage(), case .batch(let batchB)? = try b.nextMessage() else {
                Issue.record("no batch \(step)"); return
            }
            #expect(batchA.encodeFrame() == batchB.encodeFrame(), "step \(step): the replicas' frames differ")
            #expect(batchA.step == step && batchA.rank == 1)
            let reference = try fixture.reference(step: step, slice: Self.slice)
            #expect(batchA.tokens32Rows(sequenceLength: fixture.sequenceLength) == reference.tokens)
        }
        a.send(Goodbye(reason: .done).encodeFrame())
        b.send(Goodbye(reason: .done).encodeFrame())
    }

    /// When one replica leaves early the other gets `replica_lost`; both resume from the rank's cursor
    /// and continue the rank's stream where it stopped.
    @Test func aLostReplicaEndsTheSessionAndBothResumeByTheRanksCursor() throws {
        let fixture = try ServerFixture()
        let server = try fixture.startServer()
        defer { server.shutdown() }
        let a = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 1, worldSize: 2, batchSize: 3, credits: 2, jobID: "tp",
                                            replicas: 2, replicaIndex: 0)
        let b = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 1, worldSize: 2, batchSize: 3, credits: 2, jobID: "tp",
                                            replicas: 2, replicaIndex: 1)
        for _ in 0 ..< 5 {
            #expect(try a.next() != nil)
            #expect(try b.next() != nil)
        }
        #expect(a.cursor == b.cursor && a.cursor.nextStep == 5)
        let cursor = a.cursor
        b.close()
        var lost: ClientError?
        do {
            for _ in 0 ..< 200 { guard try a.next() != nil else { break } }
        } catch { lost = error }
        guard let lost, lost.code == .replicaLost else { Issue.record("expected replica_lost, got \(String(describing: lost))"); return }
        #expect(lost.detail == "Hello.replica_index")
        let a2 = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 1, worldSize: 2, batchSize: 3, cursor: cursor, credits: 2,
                                             jobID: "tp", replicas: 2, replicaIndex: 0)
        let b2 = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 1, worldSize: 2, batchSize: 3, cursor: cursor, credits: 2,
                                             jobID: "tp", replicas: 2, replicaIndex: 1)
        for step in UInt64(5) ..< 8 {
            let rows = try fixture.reference(step: step, slice: Self.slice).tokens
            for client in [b2, a2] {
                let batch = try #require(try client.next())
                #expect(batch.step == step && batch.rows.map(\.tokens) == rows)
            }
        }
        a2.close()
        b2.close()
    }

    /// Hellos that disagree with the rank's replicas are refused naming the field; the group is unaffected.
    @Test func mismatchedReplicaHellosAreRefusedNamingTheField() throws {
        let fixture = try ServerFixture()
        let server = try fixture.startServer()
        defer { server.shutdown() }
        let a = try RawConnection(path: fixture.socketPath)
        a.send(hello(0).encodeFrame(requestID: 1))
        guard case .welcome? = try a.nextMessage() else { Issue.record("no Welcome"); return }
        func refusal(_ hello: Hello) throws -> ErrorMessage? {
            let c = try RawConnection(path: fixture.socketPath)
            c.send(hello.encodeFrame(requestID: 9))
            return try c.expectErrorThenClose()
        }
        let count = try #require(try refusal(hello(1, replicas: 3)))
        #expect(count.code == .jobMismatch && count.detail == "Hello.replicas", "\(count)")
        let far = Cursor(fingerprint: server.stream.fingerprint, nextStep: 4, worldSize: 2, batchSize: 3)
        let start = try #require(try refusal(hello(1, cursor: far)))
        #expect(start.code == .jobMismatch && start.detail == "Hello.cursor", "\(start)")
        let twice = try #require(try refusal(hello(0)))
        #expect(twice.code == .rankInUse && twice.detail == "Hello.replica_index", "\(twice)")
        let single = try #require(try refusal(Hello(rank: 1, worldSize: 2, batchSize: 3, initialCredits: 1, jobID: "tp")))
        #expect(single.code == .jobMismatch && single.detail == "Hello.replicas", "\(single)")
        var outOfRange = hello(1).encodeFrame(requestID: 9)
        outOfRange[outOfRange.count - 2] = 2      // replica_index 2 of 2
        let c = try RawConnection(path: fixture.socketPath)
        c.send(outOfRange)
        let malformed = try #require(try c.expectErrorThenClose())
        #expect(malformed.code == .malformedFrame && malformed.detail == "Hello.replica_index", "\(malformed)")
        // The group still takes its second replica, which gets the rank's batches.
        let b = try RawConnection(path: fixture.socketPath)
        b.send(hello(1).encodeFrame(requestID: 1))
        guard case .welcome? = try b.nextMessage(), case .batch(let batch)? = try b.nextMessage() else { Issue.record("replica 1 refused"); return }
        #expect(batch.step == 0)
    }
}

extension Batch {
    /// The rows' tokens, `sequenceLength + 1` per row.
    func tokens32Rows(sequenceLength: Int) -> [[UInt32]] {
        (0 ..< rows.count).map { r in Array(tokens[r * (sequenceLength + 1) ..< (r + 1) * (sequenceLength + 1)]) }
    }
}
