/// A binary min-heap of small integer indices ordered by a caller-given strict total order,
/// for picking the best of `k` candidates in `O(log k)` instead of a scan.
struct IndexHeap {
    private(set) var items: [Int] = []

    init(capacity: Int) { items.reserveCapacity(capacity) }

    var isEmpty: Bool { items.isEmpty }

    /// The smallest index under `before`, without removing it.
    var first: Int? { items.first }

    /// Adds `index`; `before(a, b)` is true when `a` must come out before `b`.
    mutating func push(_ index: Int, by before: (Int, Int) -> Bool) {
        items.append(index)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard before(items[child], items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the smallest index under `before`, or nil when empty.
    mutating func pop(by before: (Int, Int) -> Bool) -> Int? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        guard !items.isEmpty else { return top }
        items[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < items.count && before(items[left], items[smallest]) { smallest = left }
            if right < items.count && before(items[right], items[smallest]) { smallest = right }
            if smallest == parent { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}
