#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A private anonymous memory mapping: page-aligned, zero-filled, and free until written.
///
/// The kernel backs a page only when it is first written, so a ring whose session ends after one
/// batch costs the pages of that batch, not of every slot, and a buffer sized for the worst case
/// (every token its own piece) costs only what is used; `munmap` at ``deallocate()`` gives every
/// page back to the system at once, whatever the size (no malloc arena keeps it, no `malloc_trim`
/// is needed). Reads of a page never written see zeros.
///
/// `@unchecked Sendable`: a pointer and a length, immutable; who may touch the bytes is the owner's rule.
public struct AnonymousPages: @unchecked Sendable {
    /// The first byte (page-aligned).
    public let base: UnsafeMutableRawPointer
    /// The mapping's length in bytes.
    public let byteCount: Int

    /// Maps `byteCount` bytes (at least one page).
    ///
    /// - Precondition: `byteCount > 0`, and the system grants the address space (like a failed
    ///   `malloc` in `UnsafeMutableRawPointer.allocate`, a refusal ends the process: the daemon
    ///   checks its memory limits before asking).
    public init(byteCount: Int) {
        precondition(byteCount > 0, "AnonymousPages byteCount must be positive, got \(byteCount)")
        let address = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let address, address != MAP_FAILED else {
            preconditionFailure("mmap of \(byteCount) bytes failed (errno \(errno))")
        }
        base = address
        self.byteCount = byteCount
    }

    /// Unmaps the pages; `base` is invalid afterwards.
    public func deallocate() {
        _ = munmap(base, byteCount)
    }
}
