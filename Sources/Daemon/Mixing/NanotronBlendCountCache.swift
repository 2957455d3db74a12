/// Where a ``NanotronOrder`` keeps its blends' stored counts between processes (the engine's
/// `NanotronBlendStore` keeps them in files of a cache directory): building SmolLM3's order is
/// about 5·10⁹ greedy steps, and the counts depend only on a stage's weights and the interval.
public protocol NanotronBlendCountCache: Sendable {
    /// The stored counts of a blend with `blend`'s weights and interval (as
    /// ``NanotronBlend/storedCounts`` gives them), nil when there are none or they cannot be
    /// trusted. The blend checks what it adopts again (``NanotronBlend/adopt(storedCounts:)``).
    func storedCounts(for blend: NanotronBlend) -> [[UInt64]]?

    /// Keeps `blend`'s stored counts (called after it computed some). Failures are the cache's to
    /// report; the order does not depend on them.
    func store(_ blend: NanotronBlend)
}
