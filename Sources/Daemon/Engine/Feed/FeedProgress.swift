import Synchronization

/// What a feed's preloader has planned so far, and what it had planned when the first batch was
/// published: how far the look-ahead reached before anything was served (relaxed atomics; read by
/// Stats, tests and benchmarks).
public final class FeedProgress: Sendable {
    /// Steps the preloader has planned (metadata only).
    public let stepsPlanned = Atomic<Int>(0)
    /// Frame requests the preloader has planned (its demand entries).
    public let framesPlanned = Atomic<Int>(0)
    /// ``stepsPlanned`` when the first batch was published; -1 before.
    public let stepsPlannedBeforeFirstBatch = Atomic<Int>(-1)
    /// ``framesPlanned`` when the first batch was published; -1 before.
    public let framesPlannedBeforeFirstBatch = Atomic<Int>(-1)

    public init() {}

    /// Records the counts at the first batch (once).
    func firstBatchPublished() {
        guard stepsPlannedBeforeFirstBatch.load(ordering: .relaxed) < 0 else { return }
        framesPlannedBeforeFirstBatch.store(framesPlanned.load(ordering: .relaxed), ordering: .relaxed)
        stepsPlannedBeforeFirstBatch.store(stepsPlanned.load(ordering: .relaxed), ordering: .releasing)
    }
}
