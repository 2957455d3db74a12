import Synchronization
import TokenfeedSystem

/// Long-lived threads that run a ``FrameCache``'s decompressions, fed through a queue allocated
/// once: submitting a job allocates nothing (no closure, no Dispatch work item per frame).
///
/// A job is a slot index: the cache has written what the slot's job needs before ``submit(slot:)``,
/// and the queue hands it over (its dequeue acquires what its enqueue released). The queue is the
/// engine's one MPMC queue (``JobQueue``): every session's packer submits and every worker takes. A
/// slot has at most one job at a time, so a queue of `capacity` ≥ the cache's slot count is never
/// full but for the moment a worker is mid-dequeue; ``submit(slot:)`` waits that out.
///
/// Each thread owns one worker index (the cache gives each its own decompression context). Idle
/// threads park on an ``EventCount`` (`queued`) that every submit notifies — a fence and a load when
/// no worker is idle — so they cost no CPU and no wake-up while nothing is decompressed; a worker
/// that finds the head job still being written by its submitter parks until the submit completes.
/// ``stop()`` ends the threads; jobs still queued then are dropped.
///
/// `@unchecked Sendable`: the queue is a lock-free MPMC queue, the rest is immutable or atomic.
final class DecompressionWorkers: @unchecked Sendable {
    /// How many threads run jobs (each with its worker index in `0 ..< threadCount`).
    let threadCount: Int
    private let jobs: JobQueue
    /// Notified after each completed enqueue (and by ``stop()``): idle workers wait on it.
    private let queued = EventCount()
    /// Notified after each completed dequeue: a submitter that met the queue's transient "full" waits on it.
    private let taken = EventCount()
    private let stopping = Atomic<Bool>(false)

    /// A queue for at least `capacity` outstanding jobs, for `threads` threads (at least one) that
    /// ``start(_:)`` starts.
    init(threads: Int, capacity: Int) {
        threadCount = max(1, threads)
        var cells = 1
        while cells < max(1, capacity) { cells <<= 1 }
        jobs = JobQueue(capacity: cells)
    }

    /// Starts the threads; each runs `job(slot, worker)` for the jobs it takes, `worker` being its index.
    func start(_ job: @escaping @Sendable (_ slot: Int, _ worker: Int) -> Void) {
        for worker in 0 ..< threadCount {
            DedicatedThread.run { [self] in work(worker: worker, job) }
        }
    }

    /// Queues `slot`'s job for the next idle thread.
    func submit(slot: Int) {
        if !jobs.enqueue(slot) {
            taken.wait(until: { jobs.enqueue(slot) })
        }
        queued.notify()
    }

    /// Ends every thread once it has finished its current job; queued jobs are not run.
    func stop() {
        stopping.store(true, ordering: .releasing)
        queued.notify()
    }

    private func work(worker: Int, _ job: (_ slot: Int, _ worker: Int) -> Void) {
        while true {
            var slot: Int?
            queued.wait(until: {
                if stopping.load(ordering: .acquiring) { return true }
                slot = jobs.dequeue()
                return slot != nil
            })
            if stopping.load(ordering: .acquiring) { return }
            guard let slot else { continue }
            taken.notify()
            job(slot, worker)
        }
    }
}
