import Benchmark
import Dispatch
import Foundation
import RingUnderTest

// Micro-benchmarks of BatchRing against MutexBatchRing (the same ring with Mutex-guarded
// index queues), measured in the same run. Results and how to read them: docs/BENCHMARKS.md.

/// Runs `body` on a new thread; `wait()` on the returned semaphore joins it.
private func spawn(_ body: @escaping @Sendable () -> Void) -> DispatchSemaphore {
    let done = DispatchSemaphore(value: 0)
    Thread {
        body()
        done.signal()
    }.start()
    return done
}

/// Fills a source buffer of `count` bytes with a non-constant pattern, faulted in.
private func sourceBuffer(_ count: Int) -> UnsafeMutableRawBufferPointer {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 64)
    for index in 0..<count { buffer[index] = UInt8(truncatingIfNeeded: index &* 7) }
    return buffer
}

/// Source and destination buffers shared between the producer thread and the benchmark
/// thread: the producer only reads `source`, the consumer only writes `destination`.
private struct Buffers: @unchecked Sendable {
    let source: UnsafeMutableRawBufferPointer
    let destination: UnsafeMutableRawBufferPointer
    init(_ count: Int) {
        source = sourceBuffer(count)
        destination = sourceBuffer(count)
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock],
        timeUnits: .nanoseconds,  // wall clock per item in whole ns: finer than throughput's K/M
        warmupIterations: 2,
        maxDuration: .seconds(3),
        maxIterations: 1_000
    )

    // One thread: acquireFree + publish + acquireFull + release, one million times.
    let singleThread = Benchmark.Configuration(scalingFactor: .mega)
    do {
        let ring = BatchRing(slotCount: 8, slotCapacity: 64)
        Benchmark("ring: 1 thread, acquire+publish+acquire+release", configuration: singleThread) { benchmark in
            for _ in benchmark.scaledIterations {
                let slot = ring.tryAcquireFree()!
                ring.publish(slot, length: 8)
                let full = ring.tryAcquireFull()!
                blackHole(full.payload.count)
                ring.release(full)
            }
        }
        let baseline = MutexBatchRing(slotCount: 8, slotCapacity: 64)
        Benchmark("mutex: 1 thread, acquire+publish+acquire+release", configuration: singleThread) { benchmark in
            for _ in benchmark.scaledIterations {
                let slot = baseline.tryAcquireFree()!
                baseline.publish(slot, length: 8)
                let full = baseline.tryAcquireFull()!
                blackHole(full.length)
                baseline.release(full.slot)
            }
        }
    }

    // Two threads: a producer thread publishes empty batches, the benchmark thread consumes them.
    // With 8 slots (the daemon's case: few, large slots) the threads mostly wait for each other,
    // so this measures hand-over plus waiting; with 1024 slots they rarely wait, so it measures
    // the queues under contention.
    let twoThreads = Benchmark.Configuration(scalingFactor: .mega)
    for slotCount in [8, 1024] {
        let ring = BatchRing(slotCount: slotCount, slotCapacity: 64)
        Benchmark("ring: 2 threads, empty batches, \(slotCount) slots", configuration: twoThreads) { benchmark in
            let items = benchmark.scaledIterations.count
            let producer = spawn {
                for _ in 0..<items {
                    let slot = ring.acquireFree()!
                    ring.publish(slot, length: 8)
                }
            }
            for _ in 0..<items {
                let slot = ring.acquireFull()!
                blackHole(slot.payload.count)
                ring.release(slot)
            }
            producer.wait()
        }
        let baseline = MutexBatchRing(slotCount: slotCount, slotCapacity: 64)
        Benchmark("mutex: 2 threads, empty batches, \(slotCount) slots", configuration: twoThreads) { benchmark in
            let items = benchmark.scaledIterations.count
            let producer = spawn {
                for _ in 0..<items {
                    let slot = baseline.acquireFree()
                    baseline.publish(slot, length: 8)
                }
            }
            for _ in 0..<items {
                let slot = baseline.acquireFull()
                blackHole(slot.length)
                baseline.release(slot.slot)
            }
            producer.wait()
        }
    }

    // End to end between two threads: the producer memcpys a payload into the slot (the packer's
    // write), the consumer memcpys it out (stand-in for the socket write), 1000 batches a sample.
    for (label, size) in [("64 KiB", 64 << 10), ("1 MiB", 1 << 20)] {
        let payload = Benchmark.Configuration(scalingFactor: .kilo)
        let buffers = Buffers(size)
        let ring = BatchRing(slotCount: 8, slotCapacity: size)
        Benchmark("ring: 2 threads, \(label) batches memcpy in+out", configuration: payload) { benchmark in
            let items = benchmark.scaledIterations.count
            let producer = spawn {
                for _ in 0..<items {
                    let slot = ring.acquireFree()!
                    slot.bytes.copyMemory(from: UnsafeRawBufferPointer(buffers.source))
                    ring.publish(slot, length: size)
                }
            }
            for _ in 0..<items {
                let slot = ring.acquireFull()!
                buffers.destination.copyMemory(from: slot.payload)
                ring.release(slot)
            }
            producer.wait()
            blackHole(buffers.destination[size - 1])
        }
        let baseline = MutexBatchRing(slotCount: 8, slotCapacity: size)
        Benchmark("mutex: 2 threads, \(label) batches memcpy in+out", configuration: payload) { benchmark in
            let items = benchmark.scaledIterations.count
            let producer = spawn {
                for _ in 0..<items {
                    let slot = baseline.acquireFree()
                    baseline.bytes(ofSlot: slot).copyMemory(from: UnsafeRawBufferPointer(buffers.source))
                    baseline.publish(slot, length: size)
                }
            }
            for _ in 0..<items {
                let slot = baseline.acquireFull()
                buffers.destination.copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: baseline.bytes(ofSlot: slot.slot)[0..<slot.length]))
                baseline.release(slot.slot)
            }
            producer.wait()
            blackHole(buffers.destination[size - 1])
        }
    }
}
