import TokenfeedSystem

/// A read-only view of consecutive little-endian u32 values inside a frame (no alignment needed,
/// no copy): used for a row's cu_seqlens.
public struct UInt32Column: RandomAccessCollection {
    private let base: UnsafeRawPointer
    /// Number of values.
    public let count: Int

    init(base: UnsafeRawPointer, count: Int) {
        self.base = base
        self.count = count
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    /// The value at `index`. - Precondition: `0 ≤ index < count`.
    public subscript(index: Int) -> UInt32 {
        precondition(index >= 0 && index < count, "index \(index) out of range 0..<\(count)")
        return base.loadLE(4 * index, as: UInt32.self)
    }
}
