import Dispatch
import Foundation
import Synchronization
import Testing
@testable import TokenfeedEngine

/// Writes the test pattern of item `id` into `bytes[0..<length]`: the id (8 bytes, little
/// endian), then bytes derived from the id and their offset.
private func writePattern(id: Int, length: Int, into bytes: UnsafeMutableRawBufferPointer) {
    precondition(length >= 8 && length <= bytes.count)
    bytes.storeBytes(of: UInt64(id).littleEndian, toByteOffset: 0, as: UInt64.self)
    for offset in 8..<length {
        bytes[offset] = UInt8(truncatingIfNeeded: id &* 131 &+ offset)
    }
}

/// The id of the pattern in `payload`, or nil if the payload is not exactly a pattern
/// written by `writePattern` (wrong length for its id, or any byte different).
private func readPattern(_ payload: UnsafeRawBufferPointer, lengthOf: (Int) -> Int) -> Int? {
    guard payload.count >= 8 else { return nil }
    let id = Int(UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: 0, as: UInt64.self)))
    guard payload.count == lengthOf(id) else { return nil }
    for offset in 8..<payload.count where payload[offset] != UInt8(truncatingIfNeeded: id &* 131 &+ offset) {
        return nil
    }
    return id
}

/// Runs `body(0) … body(count - 1)` on `count` new threads (not a pool: the bodies may block
/// each other) and returns when all have finished.
private func runOnThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        let thread = Thread {
            body(index)
            group.leave()
        }
        thread.start()
    }
    group.wait()
}

/// The slot in `value`; records an issue and throws if there is none. (`#require` needs
/// copyable values; slots are noncopyable.)
private func required<Slot: ~Copyable>(
    _ value: consuming Slot?, sourceLocation: SourceLocation = #_sourceLocation
) throws -> Slot {
    guard let slot = value else {
        Issue.record("expected a slot, got nil", sourceLocation: sourceLocation)
        throw MissingSlot()
    }
    return slot
}

private struct MissingSlot: Error {}

/// Whether `value` is nil. A slot it holds is dropped (never returned to the ring).
private func isNone<Slot: ~Copyable>(_ value: consuming Slot?) -> Bool {
    value == nil
}

/// Per-thread result lists: element `i` is written by thread `i` only, and read after all the
/// threads have been joined.
private struct ResultLists: @unchecked Sendable {
    let lists: UnsafeMutableBufferPointer<[(sequence: UInt64, id: Int)]>
    init(count: Int) {
        lists = .allocate(capacity: count)
        lists.initialize(repeating: [])
    }
    func deallocate() {
        lists.deinitialize()
        lists.deallocate()
    }
}

@Suite struct RingTests {
    @Test func slotsAreAlignedDisjointAndAllFreeAtStart() throws {
        let ring = BatchRing(slotCount: 8, slotCapacity: 1000)
        #expect(ring.slotStride == 1024)
        var seen = Set<Int>()
        var starts = Set<Int>()
        for _ in 0..<8 {
            let slot = try required(ring.tryAcquireFree())
            let start = Int(bitPattern: slot.bytes.baseAddress)
            #expect(start % 64 == 0)
            #expect(slot.bytes.count == 1000)
            #expect(slot.bytes.allSatisfy { $0 == 0 })
            seen.insert(slot.index)
            starts.insert(start)
            ring.publish(slot, length: 0)
        }
        #expect(seen == Set(0..<8))
        let sortedStarts = starts.sorted()
        #expect(zip(sortedStarts, sortedStarts.dropFirst()).allSatisfy { $1 - $0 >= 1000 })
    }

    @Test func deliversInPublicationOrderAcrossManyLaps() throws {
        let ring = BatchRing(slotCount: 4, slotCapacity: 128)
        let length = { (id: Int) in 8 + id % 120 }
        var nextId = 0
        var nextExpected = 0
        for round in 0..<250 {
            let batch = 1 + round % 4
            for _ in 0..<batch {
                let slot = try required(ring.tryAcquireFree())
                writePattern(id: nextId, length: length(nextId), into: slot.bytes)
                ring.publish(slot, length: length(nextId))
                nextId += 1
            }
            for _ in 0..<batch {
                let slot = try required(ring.tryAcquireFull())
                #expect(readPattern(slot.payload, lengthOf: length) == nextExpected)
                #expect(slot.sequenceNumber == UInt64(nextExpected))
                #expect(Int(bitPattern: slot.payload.baseAddress) % 64 == 0)
                ring.release(slot)
                nextExpected += 1
            }
            let drained = isNone(ring.tryAcquireFull())
            #expect(drained)
        }
        #expect(nextExpected == nextId && nextId > 4 * 100)
    }

    @Test func publishedCountFollowsPublishAndAcquire() {
        let ring = BatchRing(slotCount: 4, slotCapacity: 64)
        #expect(ring.publishedCount == 0)
        for _ in 0 ..< 3 {
            guard let slot = ring.tryAcquireFree() else { Issue.record("no free slot"); return }
            ring.publish(slot, length: 8)
        }
        #expect(ring.publishedCount == 3)
        guard let taken = ring.tryAcquireFull() else { Issue.record("no full slot"); return }
        #expect(ring.publishedCount == 2)
        ring.release(taken)
        #expect(ring.publishedCount == 2)
    }

    @Test func fullRingRefusesFreeSlotsUntilOneIsReleased() throws {
        let ring = BatchRing(slotCount: 4, slotCapacity: 64)
        let emptyAtStart = isNone(ring.tryAcquireFull())
        #expect(emptyAtStart)
        for _ in 0..<4 {
            let slot = try required(ring.tryAcquireFree())
            ring.publish(slot, length: 8)
        }
        let refusedWhenFull = isNone(ring.tryAcquireFree())
        #expect(refusedWhenFull)

        let read = try required(ring.tryAcquireFull())
        let readIndex = read.index
        let refusedWhileRead = isNone(ring.tryAcquireFree())
        #expect(refusedWhileRead)  // read but not released: still not free
        ring.release(read)
        let again = try required(ring.tryAcquireFree())
        #expect(again.index == readIndex)
        let refusedWhileReacquired = isNone(ring.tryAcquireFree())
        #expect(refusedWhileReacquired)
        ring.abandon(again)
        let afterAbandon = try required(ring.tryAcquireFree())
        #expect(afterAbandon.index == readIndex)
        ring.abandon(afterAbandon)
    }

    @Test func heldFreeSlotsAlsoCountAgainstCapacity() throws {
        let ring = BatchRing(slotCount: 2, slotCapacity: 64)
        let first = try required(ring.tryAcquireFree())
        let second = try required(ring.tryAcquireFree())
        #expect(first.index != second.index)
        let refusedWhileBothHeld = isNone(ring.tryAcquireFree())
        #expect(refusedWhileBothHeld)
        ring.abandon(first)
        ring.abandon(second)
        let refusedAfterAbandon = isNone(ring.tryAcquireFree())
        #expect(!refusedAfterAbandon)
    }

    @Test func blockedProducerGetsTheSlotAConsumerReleases() throws {
        let ring = BatchRing(slotCount: 2, slotCapacity: 64)
        for _ in 0..<2 {
            let slot = try required(ring.tryAcquireFree())
            ring.publish(slot, length: 0)
        }
        let acquired = Atomic<Int>(-1)
        let group = DispatchGroup()
        group.enter()
        Thread {
            if let slot = ring.acquireFree() {  // blocks: nothing is free yet
                acquired.store(slot.index, ordering: .relaxed)
                ring.abandon(slot)
            }
            group.leave()
        }.start()
        let read = try required(ring.tryAcquireFull())
        let releasedIndex = read.index
        ring.release(read)
        group.wait()
        let acquiredIndex = acquired.load(ordering: .relaxed)
        #expect(acquiredIndex == releasedIndex)
    }

    @Test func closeDrainsPublishedSlotsThenStopsWaiters() throws {
        let ring = BatchRing(slotCount: 4, slotCapacity: 64)
        for id in 0..<3 {
            let slot = try required(ring.tryAcquireFree())
            writePattern(id: id, length: 16, into: slot.bytes)
            ring.publish(slot, length: 16)
        }
        ring.close()
        #expect(ring.isClosed)
        let refusedAfterClose = isNone(ring.acquireFree())
        #expect(refusedAfterClose)
        for id in 0..<3 {
            let slot = try required(ring.acquireFull())
            #expect(readPattern(slot.payload, lengthOf: { _ in 16 }) == id)
            ring.release(slot)
        }
        let endedAfterDrain = isNone(ring.acquireFull())
        #expect(endedAfterDrain)
    }

    @Test func closeWakesAConsumerWaitingOnAnEmptyRing() {
        let ring = BatchRing(slotCount: 2, slotCapacity: 64)
        let gotNil = Atomic<Bool>(false)
        let group = DispatchGroup()
        group.enter()
        Thread {
            if let slot = ring.acquireFull() { ring.release(slot) } else { gotNil.store(true, ordering: .relaxed) }
            group.leave()
        }.start()
        ring.close()
        group.wait()
        let consumerGotNil = gotNil.load(ordering: .relaxed)
        #expect(consumerGotNil)
    }

    /// 4 producers × 4 consumers through an 8-slot ring: every item arrives exactly once with
    /// its payload intact, sequence numbers are exactly 0 ..< total, and each producer's items
    /// arrive in the order it published them.
    @Test func concurrentProducersAndConsumersLoseAndRepeatNothing() {
        let producers = 4, consumers = 4, itemsPerProducer = 20_000
        let total = producers * itemsPerProducer
        let ring = BatchRing(slotCount: 8, slotCapacity: 256)
        let length = { @Sendable (id: Int) in 8 + id % 240 }
        // One result list per consumer, each written only by its consumer and read after the
        // join. (Not a `Mutex`: ThreadSanitizer does not see `Synchronization.Mutex` on Linux
        // with Swift 6.3.1 and reports its guarded accesses as races.)
        let received = ResultLists(count: consumers)
        defer { received.deallocate() }
        let corrupt = Atomic<Int>(0)

        let consumerGroup = DispatchGroup()
        for consumer in 0..<consumers {
            consumerGroup.enter()
            Thread {
                var local: [(sequence: UInt64, id: Int)] = []
                local.reserveCapacity(total)
                while let slot = ring.acquireFull() {
                    if let id = readPattern(slot.payload, lengthOf: length) {
                        local.append((slot.sequenceNumber, id))
                    } else {
                        corrupt.add(1, ordering: .relaxed)
                    }
                    ring.release(slot)
                }
                received.lists[consumer] = local
                consumerGroup.leave()
            }.start()
        }
        runOnThreads(producers) { producer in
            for k in 0..<itemsPerProducer {
                let id = producer * itemsPerProducer + k
                guard let slot = ring.acquireFree() else { return }
                writePattern(id: id, length: length(id), into: slot.bytes)
                ring.publish(slot, length: length(id))
            }
        }
        ring.close()
        consumerGroup.wait()

        let records = received.lists.flatMap { $0 }.sorted { $0.sequence < $1.sequence }
        let corruptCount = corrupt.load(ordering: .relaxed)
        #expect(corruptCount == 0)
        #expect(records.count == total)
        #expect(records.map(\.sequence) == (0..<UInt64(total)).map { $0 })
        #expect(records.map(\.id).sorted() == Array(0..<total))
        for producer in 0..<producers {
            let ids = records.map(\.id).filter { $0 / itemsPerProducer == producer }
            #expect(ids == ids.sorted(), "producer \(producer)'s items arrived out of order")
        }
        let nothingLeft = isNone(ring.tryAcquireFull())
        #expect(nothingLeft)
        var free = 0
        while let slot = ring.tryAcquireFree() { free += 1; ring.publish(slot, length: 0) }
        #expect(free == 8)  // every slot came back
    }
}
