#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

/// What a system call on a non-blocking descriptor did: its result, or nothing because it would
/// have blocked (`EAGAIN`/`EWOULDBLOCK`).
public enum IOResult<Value> {
    /// The call completed with this result.
    case processed(Value)
    /// The descriptor is non-blocking and the call would have blocked; nothing was done.
    case wouldBlock
}

extension IOResult: Sendable where Value: Sendable {}
extension IOResult: Equatable where Value: Equatable {}

/// Runs a system call the way swift-nio's NIOPosix `syscall(blocking:)` does, the one place in this
/// package that looks at `errno` after a call:
/// - `body` returning -1 with `EINTR` (a signal arrived) runs `body` again;
/// - with `EAGAIN`/`EWOULDBLOCK` and `blocking` false, returns `.wouldBlock` (with `blocking` true
///   the call was not expected to block, so it is an error like any other);
/// - any other -1 throws the `Errno` read at once, before anything else can run (no message is
///   built, no memory allocated, between the call and the read of `errno`).
///
/// - Parameter blocking: whether the descriptor is blocking.
/// - Parameter body: the call; returns -1 and sets `errno` on failure, as the C library does.
/// - Returns: the call's result, or `.wouldBlock`.
/// - Throws: the call's `Errno`, captured immediately.
@inlinable
public func systemCall<Result: FixedWidthInteger>(
    blocking: Bool, _ body: () -> Result
) throws(Errno) -> IOResult<Result> {
    while true {
        let result = body()
        if result != -1 { return .processed(result) }
        let code = errno  // first thing after the call: nothing may run in between
        switch code {
        case EINTR:
            continue
        case EAGAIN where !blocking, EWOULDBLOCK where !blocking:
            return .wouldBlock
        default:
            throw Errno(rawValue: code)
        }
    }
}

/// Runs a system call on a blocking descriptor (or one that never blocks: `open`, `mkdir`, …):
/// ``systemCall(blocking:_:)`` with `blocking` true, so `EINTR` is retried and any other failure,
/// `EAGAIN` included, throws its `Errno`.
/// - Returns: the call's result (never -1).
/// - Throws: the call's `Errno`, captured immediately.
@inlinable
public func systemCall<Result: FixedWidthInteger>(_ body: () -> Result) throws(Errno) -> Result {
    switch try systemCall(blocking: true, body) {
    case .processed(let result): return result
    case .wouldBlock: preconditionFailure("a blocking system call reported EAGAIN as would-block")
    }
}
