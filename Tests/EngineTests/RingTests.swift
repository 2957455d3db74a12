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
        ring.abandon(again)
        let afterAbandon = try required(ring.tryAcquireFree())
        #expect(afterAbandon.index == readIndex)
        ring.abandon(afterAbandon)
    }

    /// One producer, one consumer, each holding at most one slot (invariant 2): a second slot taken
    /// before the first is handed on would be the same slot, so it is a precondition failure.
    @Test func takingASecondSlotBeforeHandingOnTheFirstStopsTheProcess() async {
        await #expect(processExitsWith: .failure) {
            let ring = BatchRing(slotCount: 4, slotCapacity: 64)
            let first = ring.tryAcquireFree()
            let second = ring.tryAcquireFree()  // stops here
            if let first { ring.abandon(first) }
            if let second { ring.abandon(second) }
        }
        await #expect(processExitsWith: .failure) {
            let ring = BatchRing(slotCount: 4, slotCapacity: 64)
            for _ in 0 ..< 2 {
                if let slot = ring.tryAcquireFree() { ring.publish(slot, length: 0) }
            }
            let first = ring.tryAcquireFull()
            let second = ring.tryAcquireFull()  // stops here
            if let first { ring.release(first) }
            if let second { ring.release(second) }
        }
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

    /// The daemon's shape: one producer thread and one consumer thread through a 4-slot ring, 100,000
    /// batches of varying lengths, both sides using the blocking calls (so each parks whenever the
    /// other is slower; every 1,000th batch the consumer sleeps 2 ms holding its slot, and every
    /// 1,000th the producer sleeps before publishing). Every batch arrives once, in order, with
    /// sequence number = its index and its payload intact — checked again after the consumer's sleep,
    /// so a producer that overwrote a slot not yet released (no backpressure) is caught.
    @Test func oneProducerOneConsumerDeliverInOrderWithBackpressure() {
        let items = 100_000, slotCount = 4
        let ring = BatchRing(slotCount: slotCount, slotCapacity: 256)
        let length = { @Sendable (id: Int) in 8 + id % 240 }
        let outOfOrder = Atomic<Int>(0)
        let corrupt = Atomic<Int>(0)
        let received = Atomic<Int>(0)
        let consumerDone = DispatchGroup()
        consumerDone.enter()
        Thread {
            var expected = 0
            while let slot = ring.acquireFull() {
                let id = readPattern(slot.payload, lengthOf: length)
                if id == nil { corrupt.add(1, ordering: .relaxed) }
                if id != expected || slot.sequenceNumber != UInt64(expected) { outOfOrder.add(1, ordering: .relaxed) }
                if expected % 1000 == 999 {
                    usleep(2000)  // the producer fills every other slot meanwhile, and must not touch this one
                    if readPattern(slot.payload, lengthOf: length) != id { corrupt.add(1, ordering: .relaxed) }
                }
                ring.release(slot)
                expected += 1
            }
            received.store(expected, ordering: .relaxed)
            consumerDone.leave()
        }.start()
        runOnThreads(1) { _ in
            for id in 0 ..< items {
                guard let slot = ring.acquireFree() else { return }
                writePattern(id: id, length: length(id), into: slot.bytes)
                if id % 1000 == 500 { usleep(1000) }  // the consumer drains the ring and parks
                ring.publish(slot, length: length(id))
            }
        }
        ring.close()
        consumerDone.wait()
        #expect(received.load(ordering: .relaxed) == items)
        #expect(outOfOrder.load(ordering: .relaxed) == 0)
        #expect(corrupt.load(ordering: .relaxed) == 0)
        let nothingLeft = isNone(ring.tryAcquireFull())
        #expect(nothingLeft)
        var free = 0
        while let slot = ring.tryAcquireFree() { free += 1; ring.publish(slot, length: 0) }
        #expect(free == slotCount)  // every slot came back
    }
}
