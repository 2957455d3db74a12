#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage
import Testing
import TokenfeedSystem

/// `systemCall(blocking:_:)`: EINTR retried, EAGAIN "would block" on non-blocking descriptors, any
/// other failure thrown as the `Errno` set by the call.
@Suite struct SystemCallTests {
    /// A call that fails with `failures` in turn (setting errno as the C library does), then returns `result`.
    final class ScriptedCall {
        var failures: [Int32]
        let result: Int
        private(set) var calls = 0
        init(failing failures: [Int32], then result: Int) {
            self.failures = failures
            self.result = result
        }
        func callAsFunction() -> Int {
            calls += 1
            guard !failures.isEmpty else { return result }
            errno = failures.removeFirst()
            return -1
        }
    }

    @Test func eintrIsRetriedUntilTheCallCompletes() throws {
        let call = ScriptedCall(failing: [EINTR, EINTR, EINTR], then: 7)
        #expect(try systemCall(blocking: true) { call() } == .processed(7))
        #expect(call.calls == 4)
        let again = ScriptedCall(failing: [EINTR], then: 3)
        #expect(try systemCall { again() } == 3)
        #expect(again.calls == 2)
    }

    @Test func eagainIsWouldBlockOnANonBlockingDescriptor() throws {
        for code in [EAGAIN, EWOULDBLOCK] {
            let call = ScriptedCall(failing: [EINTR, code], then: 1)
            #expect(try systemCall(blocking: false) { call() } == .wouldBlock)
            #expect(call.calls == 2, "would block is returned at once, not retried")
        }
    }

    @Test func eagainIsAnErrorOnABlockingDescriptor() {
        let call = ScriptedCall(failing: [EAGAIN], then: 1)
        #expect(throws: Errno.resourceTemporarilyUnavailable) { try systemCall(blocking: true) { call() } }
        #expect(call.calls == 1)
    }

    @Test func otherFailuresThrowTheirErrnoAtOnce() {
        let call = ScriptedCall(failing: [EBADF], then: 1)
        #expect(throws: Errno.badFileDescriptor) { try systemCall(blocking: false) { call() } }
        #expect(call.calls == 1)
    }

    @Test func realCallsOnAPipe() throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        defer { _ = LibC.close(ends[0]); _ = LibC.close(ends[1]) }
        setNonBlocking(ends[0])
        var byte: UInt8 = 0
        #expect(try systemCall(blocking: false) { LibC.read(ends[0], &byte, 1) } == .wouldBlock)
        var sent: UInt8 = 42
        #expect(try systemCall { LibC.write(ends[1], &sent, 1) } == 1)
        #expect(try systemCall(blocking: false) { LibC.read(ends[0], &byte, 1) } == .processed(1))
        #expect(byte == 42)
        #expect(throws: Errno.badFileDescriptor) { try systemCall { LibC.read(-1, &byte, 1) } }
    }

    @Test func systemCallErrorCapturesErrnoBeforeBuildingItsMessage() {
        errno = ENOENT
        // Building the operation text runs after errno was captured, whatever it does to errno.
        let error = SystemCallError({ () -> String in errno = EPERM; return "open /nowhere" }())
        #expect(error.errno == .noSuchFileOrDirectory)
        #expect(error.description == "open /nowhere: No such file or directory")
    }
}
