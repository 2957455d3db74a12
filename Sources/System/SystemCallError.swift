#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

/// A failed system call: what was being done (the call and its subject) and its `Errno`.
public struct SystemCallError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was being done, e.g. "bind /run/tokenfeed.sock".
    public var operation: String
    /// The call's error.
    public var errno: Errno

    /// The call's error as a C `errno` value.
    public var code: Int32 { errno.rawValue }

    /// `operation` failed with `errno` (captured by ``systemCall(_:)`` or swift-system).
    public init(_ operation: String, errno: Errno) {
        self.operation = operation
        self.errno = errno
    }

    /// `operation` failed with the C `errno` value `code`, captured earlier by the caller.
    public init(_ operation: String, code: Int32) {
        self.init(operation, errno: Errno(rawValue: code))
    }

    /// Captures the current `errno` first, then builds the message: the failed call must be the last
    /// thing before this initializer (building `operation` may allocate and so change `errno`, which
    /// is why it is an autoclosure evaluated after the capture).
    public init(_ operation: @autoclosure () -> String) {
        let captured = Errno.fromCurrentValue()
        self.init(operation(), errno: captured)
    }

    /// "operation: strerror text", e.g. "bind /run/tokenfeed.sock: Address already in use".
    public var description: String { "\(operation): \(errno)" }
}

extension Errno {
    /// The calling thread's `errno` now (swift-system keeps its own `Errno.current` internal). Read it
    /// right after the failed call, before anything that may allocate.
    @inlinable
    public static func fromCurrentValue() -> Errno { Errno(rawValue: errno) }
}
