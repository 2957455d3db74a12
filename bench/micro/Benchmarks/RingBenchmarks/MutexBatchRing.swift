#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The baseline `BatchRing` is measured against: the same preallocated slot storage and the
/// same hand-over (free indices → producer → full indices → consumer → free), but the two index
/// queues are fixed circular arrays each guarded by a `Mutex`, and the blocking calls wait with
/// the spin / `sched_yield` / `usleep` schedule `BatchRing` used before it parked on an
/// `EventCount` (its `Backoff`, removed in issue 14).
final class MutexBatchRing: @unchecked Sendable {
    /// A fixed-capacity FIFO of slot indices and lengths, guarded by a `Mutex`. No allocation
    /// after init.
    struct IndexQueue: ~Copyable {
        private struct State {
            var slots: [Int]
            var lengths: [Int]
            var head = 0
            var count = 0
        }
        private let state: Mutex<State>

        init(capacity: Int) {
            state = Mutex(State(slots: Array(repeating: 0, count: capacity),
                                lengths: Array(repeating: 0, count: capacity)))
        }

        func push(slot: Int, length: Int) {
            state.withLock { queue in
                precondition(queue.count < queue.slots.count)
                let tail = (queue.head + queue.count) % queue.slots.count
                queue.slots[tail] = slot
                queue.lengths[tail] = length
                queue.count += 1
            }
        }

        func pop() -> (slot: Int, length: Int)? {
            state.withLock { queue in
                guard queue.count > 0 else { return nil }
                let taken = (queue.slots[queue.head], queue.lengths[queue.head])
                queue.head = (queue.head + 1) % queue.slots.count
                queue.count -= 1
                return taken
            }
        }
    }

    let slotCount: Int
    let slotCapacity: Int
    let slotStride: Int
    private let storage: UnsafeMutableRawPointer
    private let free: IndexQueue
    private let full: IndexQueue

    init(slotCount: Int, slotCapacity: Int) {
        self.slotCount = slotCount
        self.slotCapacity = slotCapacity
        slotStride = (slotCapacity + 63) / 64 * 64
        storage = UnsafeMutableRawPointer.allocate(byteCount: slotStride * slotCount, alignment: 64)
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: slotStride * slotCount)
        free = IndexQueue(capacity: slotCount)
        full = IndexQueue(capacity: slotCount)
        for slot in 0..<slotCount { free.push(slot: slot, length: 0) }
    }

    deinit { storage.deallocate() }

    func bytes(ofSlot slot: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: storage + slot * slotStride, count: slotCapacity)
    }

    func tryAcquireFree() -> Int? { free.pop()?.slot }
    func publish(_ slot: Int, length: Int) { full.push(slot: slot, length: length) }
    func tryAcquireFull() -> (slot: Int, length: Int)? { full.pop() }
    func release(_ slot: Int) { free.push(slot: slot, length: 0) }

    func acquireFree() -> Int {
        var waiter = Waiter()
        while true {
            if let slot = tryAcquireFree() { return slot }
            waiter.wait()
        }
    }

    func acquireFull() -> (slot: Int, length: Int) {
        var waiter = Waiter()
        while true {
            if let slot = tryAcquireFull() { return slot }
            waiter.wait()
        }
    }

    /// A copy of the former `Backoff` schedule (64 spins, 16 yields, sleeps 1…256 µs).
    private struct Waiter {
        var round = 0
        var sleep: UInt32 = 1
        mutating func wait() {
            if round < 64 {
                round += 1
            } else if round < 80 {
                round += 1
                sched_yield()
            } else {
                usleep(sleep)
                sleep = min(sleep * 2, 256)
            }
        }
    }
}
