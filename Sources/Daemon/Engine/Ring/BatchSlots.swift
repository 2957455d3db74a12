/// A free slot of a `BatchRing`, owned by the ring's producer from acquiring it until it is
/// published (or abandoned); the producer holds at most one at a time.
///
/// Noncopyable: the slot can be handed on exactly once (`BatchRing.publish(_:length:)` or
/// `BatchRing.abandon(_:)` consume it), so the compiler rejects filling a slot after publishing
/// it, or publishing it twice.
///
/// `@unchecked Sendable` because it carries a raw pointer: the slot's bytes belong to whoever
/// holds this value — the ring hands each slot to one party at a time — so moving the handle
/// to another thread moves the ownership with it. The ring must outlive the handle.
public struct FreeBatchSlot: ~Copyable, @unchecked Sendable {
    /// The slot's index in the ring, `0 ..< slotCount`.
    public let index: Int
    /// The slot's whole region: `slotCapacity` bytes, 64-byte aligned, to be filled with the
    /// batch. Valid until the slot is published or abandoned.
    public let bytes: UnsafeMutableRawBufferPointer

    init(index: Int, bytes: UnsafeMutableRawBufferPointer) {
        self.index = index
        self.bytes = bytes
    }
}

/// A published slot of a `BatchRing`, owned by the ring's consumer from acquiring it until it is
/// released; the consumer holds at most one at a time.
///
/// Noncopyable for the same reason as `FreeBatchSlot`: `BatchRing.release(_:)` consumes it, so
/// the payload cannot be read after the slot went back to the producers.
///
/// `@unchecked Sendable`: see `FreeBatchSlot`.
public struct FullBatchSlot: ~Copyable, @unchecked Sendable {
    /// The slot's index in the ring, `0 ..< slotCount`.
    public let index: Int
    /// The batch's position in the ring's publication order: 0 for the first batch ever
    /// published, then 1, 2, … with no gap and no repeat (the ring has one producer, so this is
    /// production order).
    public let sequenceNumber: UInt64
    /// The payload: the first `length` bytes the producer published. 64-byte aligned.
    /// Valid until the slot is released.
    public let payload: UnsafeRawBufferPointer

    init(index: Int, sequenceNumber: UInt64, payload: UnsafeRawBufferPointer) {
        self.index = index
        self.sequenceNumber = sequenceNumber
        self.payload = payload
    }
}
