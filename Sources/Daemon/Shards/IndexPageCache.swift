import TokenfeedSystem

/// The process-wide cache of decoded index pages (frame-table and document-end pages of every open
/// shard), least recently used first out, bounded by bytes. What a process holds of its shards'
/// indexes is this cache, whatever the corpus size.
///
/// Thread-safe (a ``LockedValue``); a page is read from its file outside the lock, so two threads
/// missing the same page may both read it (the second insert wins, both results are equal).
/// Planners keep the page they walk (``DocumentLocator``), so the lock is taken once per page
/// change, not per lookup.
public final class IndexPageCache: Sendable {
    /// The cache every ``ShardReader`` uses (16 MiB unless ``setCapacity(bytes:)`` says otherwise).
    public static let shared = IndexPageCache(capacityBytes: 16 << 20)

    struct Key: Hashable {
        var shard: UInt64
        var section: IndexSection
        var page: Int
    }

    private struct State {
        var pages: [Key: (page: IndexPage, tick: UInt64)] = [:]
        var bytes = 0
        var capacity: Int
        var tick: UInt64 = 0
        var reads = 0
    }

    private let state: LockedValue<State>

    public init(capacityBytes: Int) {
        state = LockedValue(State(capacity: max(capacityBytes, 64 << 10)))
    }

    /// Sets the budget (at least 64 KiB) and evicts down to it.
    public func setCapacity(bytes: Int) {
        state.withLock { s in
            s.capacity = max(bytes, 64 << 10)
            Self.evict(&s)
        }
    }

    /// Bytes of the pages held now.
    public var residentBytes: Int { state.withLock { $0.bytes } }
    /// Pages held now.
    public var pageCount: Int { state.withLock { $0.pages.count } }
    /// Pages read from files since the process started (misses), for tests and benchmarks.
    public var pagesRead: Int { state.withLock { $0.reads } }

    /// Forgets every page (tests).
    public func removeAll() {
        state.withLock { s in
            s.pages.removeAll()
            s.bytes = 0
        }
    }

    /// The page, when held (and marks it used).
    func page(_ key: Key) -> IndexPage? {
        state.withLock { s in
            guard let hit = s.pages[key] else { return nil }
            s.tick += 1
            s.pages[key] = (hit.page, s.tick)
            return hit.page
        }
    }

    /// Keeps a page just read, evicting the least recently used pages beyond the budget.
    func insert(_ page: IndexPage, for key: Key) {
        state.withLock { s in
            s.tick += 1
            s.reads += 1
            if let old = s.pages.updateValue((page, s.tick), forKey: key) { s.bytes -= old.page.residentBytes }
            s.bytes += page.residentBytes
            Self.evict(&s)
        }
    }

    /// Drops the least recently used pages until the cache holds at most three quarters of its
    /// budget (so that eviction, O(n log n), runs once per quarter budget of new pages).
    private static func evict(_ s: inout State) {
        guard s.bytes > s.capacity else { return }
        let target = s.capacity / 4 * 3
        for (key, entry) in s.pages.sorted(by: { $0.value.tick < $1.value.tick }) {
            if s.bytes <= target { break }
            s.pages[key] = nil
            s.bytes -= entry.page.residentBytes
        }
    }
}
