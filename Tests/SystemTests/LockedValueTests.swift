import Dispatch
import Testing
import TokenfeedSystem

@Suite struct LockedValueTests {
    /// Compiles only for a `Sendable` argument.
    private func shared<T: Sendable>(_ value: T) -> T { value }

    @Test func concurrentUpdatesAreNotLost() {
        let counter = shared(LockedValue(0))  // LockedValue<Int> is Sendable: Int is
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0 ..< 1_000 { counter.withLock { $0 += 1 } }
        }
        #expect(counter.withLock { $0 } == 8_000)
    }
}
