import Dispatch
import Synchronization
import TokenfeedSystem

/// Long-lived threads that run a ``FrameCache``'s decompressions, fed through a queue allocated
/// once: submitting a job allocates nothing (no closure, no Dispatch work item per frame).
///
/// A job is a slot index: the cache has written what the slot's job needs before ``submit(slot:)``,
/// and the queue hands it over (its dequeue acquires what its enqueue released). A slot has at most
/// one job at a time, so a queue of `capacity` ≥ the cache's slot count is never full but for the
/// moment a consumer is mid-dequeue (``SlotQueue``); ``submit(slot:)`` retries then.
///
/// Each thread owns one worker index (the cache gives each its own decompression context). Idle
/// threads wait on a semaphore — they cost no CPU while nothing is decompressed — and each submit
/// signals it once, so a thread woken finds a job (perhaps after a producer still mid-enqueue
/// finishes writing it). ``stop()`` ends the threads; jobs still queued then are dropped.
///
/// `@unchecked Sendable`: the queue is a lock-free MPMC queue, the rest is immutable or atomic.
final class DecompressionWorkers: @unchecked Sendable {
    /// How many threads run jobs (each with its worker index in `0 ..< threadCount`).
    let threadCount: Int
    private let jobs: SlotQueue
    private let available = DispatchSemaphore(value: 0)
    private let stopping = Atomic<Bool>(false)

    /// A queue for at least `capacity` outstanding jobs, for `threads` threads (at least one) that
    /// ``start(_:)`` starts.
    init(threads: Int, capacity: Int) {
        threadCount = max(1, threads)
        var cells = 1
        while cells < max(1, capacity) { cells <<= 1 }
        jobs = SlotQueue(capacity: cells)
    }

    /// Starts the threads; each runs `job(slot, worker)` for the jobs it takes, `worker` being its index.
    func start(_ job: @escaping @Sendable (_ slot: Int, _ worker: Int) -> Void) {
        for worker in 0 ..< threadCount {
            DedicatedThread.run { [self] in work(worker: worker, job) }
        }
    }

    /// Queues `slot`'s job for the next idle thread.
    func submit(slot: Int) {
        var backoff = Backoff()
        while jobs.enqueue(SlotQueue.Entry(slot: slot, length: 0)) == nil { backoff.wait() }
        available.signal()
    }

    /// Ends every thread once it has finished its current job; queued jobs are not run.
    func stop() {
        stopping.store(true, ordering: .releasing)
        for _ in 0 ..< threadCount { available.signal() }
    }

    private func work(worker: Int, _ job: (_ slot: Int, _ worker: Int) -> Void) {
        while true {
            available.wait()
            if stopping.load(ordering: .acquiring) { return }
            var backoff = Backoff()
            var taken = jobs.dequeue()
            while taken == nil {
                backoff.wait()
                taken = jobs.dequeue()
            }
            if let taken { job(taken.entry.slot, worker) }
        }
    }
}
