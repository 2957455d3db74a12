import TokenfeedShards

/// Names one data frame of one shard of one dataset.
public struct FrameKey: Sendable, Hashable {
    public var dataset: Int32
    public var shard: Int32
    public var frame: Int32

    public init(dataset: Int, shard: Int, frame: Int) {
        self.dataset = Int32(dataset)
        self.shard = Int32(shard)
        self.frame = Int32(frame)
    }
}

/// Hands out decompressed frames to the packer.
///
/// The packer asks for frames in a fixed order (sequences in batch order, pieces in order, frames of
/// a piece ascending) and a frame's bytes are valid until the next call that names another frame.
public protocol FrameProvider: AnyObject {
    /// The decompressed bytes of `key`'s frame (its token count × the shard's token width).
    /// - Throws: `ShardError` naming the shard and frame when it cannot be read or is corrupt.
    func frame(_ key: FrameKey) throws(ShardError) -> UnsafeRawBufferPointer
}

/// Decompresses frames on demand on the caller's thread, keeping the last few. For tools
/// (`tokenfeed dump --offline`) and tests; the daemon uses ``Preloader``.
public final class DirectFrameProvider: FrameProvider {
    private let stream: GlobalStream
    private let decompressor = ZstdDecompressor()
    private let scratch: UnsafeMutableRawBufferPointer
    private var slots: [(key: FrameKey, bytes: UnsafeMutableRawBufferPointer, count: Int)] = []
    private let slotBytes: Int
    private let capacity: Int
    private var next = 0

    /// - Parameter capacity: how many decompressed frames to keep.
    public init(stream: GlobalStream, capacity: Int = 4) {
        self.stream = stream
        self.capacity = max(1, capacity)
        self.slotBytes = stream.datasets.map(\.shards.largestDecodedFrame).max() ?? 0
        self.scratch = .allocate(byteCount: max(1, stream.datasets.map(\.shards.largestFrame).max() ?? 0), alignment: 64)
    }

    deinit {
        scratch.deallocate()
        for slot in slots { slot.bytes.deallocate() }
    }

    public func frame(_ key: FrameKey) throws(ShardError) -> UnsafeRawBufferPointer {
        if let hit = slots.first(where: { $0.key == key }) {
            return UnsafeRawBufferPointer(rebasing: hit.bytes[..<hit.count])
        }
        let reader = stream.datasets[Int(key.dataset)].shards[Int(key.shard)]
        let index: Int
        if slots.count < capacity {
            slots.append((key, .allocate(byteCount: max(slotBytes, 1), alignment: 64), 0))
            index = slots.count - 1
        } else {
            index = next
            next = (next + 1) % capacity
        }
        let count = Int(reader.metadata.tokenRange(ofFrame: Int(key.frame)).count) * reader.metadata.tokenWidth.bytes
        slots[index].key = FrameKey(dataset: -1, shard: -1, frame: -1)
        try reader.decodeFrame(Int(key.frame), into: slots[index].bytes, scratch: scratch, decompressor: decompressor)
        slots[index].key = key
        slots[index].count = count
        return UnsafeRawBufferPointer(rebasing: slots[index].bytes[..<count])
    }
}
