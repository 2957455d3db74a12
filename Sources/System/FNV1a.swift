/// 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3), running: the hash of
/// everything added so far, readable at any point (prefix hashes in one pass). The same on every
/// machine and every run, unlike Swift's per-process seeded `Hasher`, so it names files and streams.
/// Check value: `FNV1a64.hash("a")` = 0xaf63dc4c8601ec8c.
public struct FNV1a64: Sendable, Hashable {
    /// The hash of the bytes added so far (the offset basis before any).
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    /// An empty hash.
    public init() {}

    /// Adds `bytes`.
    public mutating func add(_ bytes: some Sequence<UInt8>) {
        for byte in bytes {
            value ^= UInt64(byte)
            value &*= 0x0000_0100_0000_01b3
        }
    }

    /// The 64-bit FNV-1a of the UTF-8 bytes of `text`.
    public static func hash(_ text: String) -> UInt64 {
        var hasher = FNV1a64()
        hasher.add(text.utf8)
        return hasher.value
    }
}

/// 128-bit FNV-1a (offset basis 0x6c62272e07bb014262b821756295c58d, prime 2^88 + 0x13B).
/// Check value: `FNV1a128.hash("a")` = 0xd228cb696f1a8caf78912b704e4a8964.
public enum FNV1a128 {
    /// The 128-bit FNV-1a of `bytes`.
    public static func hash(_ bytes: some Sequence<UInt8>) -> UInt128 {
        let prime: UInt128 = (1 << 88) + 0x13B
        var hash: UInt128 = 0x6c62272e07bb014262b821756295c58d
        for byte in bytes {
            hash ^= UInt128(byte)
            hash &*= prime
        }
        return hash
    }
}
