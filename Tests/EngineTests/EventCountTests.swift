import Dispatch
import Foundation
import Synchronization
import Testing
@testable import TokenfeedEngine

/// Runs `body` on a new thread (not a pool: the bodies block), entered in `group` until it returns.
private func startThread(in group: DispatchGroup, _ body: @escaping @Sendable () -> Void) {
    group.enter()
    Thread {
        body()
        group.leave()
    }.start()
}

/// The parker: no lost wake-up, timeouts, every waiter woken. Every wait here has a timeout, so a lost
/// wake-up fails the test instead of hanging it.
@Suite struct EventCountTests {
    /// Two threads pass a turn back and forth 20,000 times, each waiting on one shared event count for
    /// its turn (a ping-pong: every wait needs the other side's notify, and most waits park, because
    /// the other side goes through a notify and a spin before it hands the turn back). A wake-up lost
    /// anywhere leaves a waiter asleep for its whole 10 s timeout, which the test counts as a failure.
    @Test func pingPongLosesNoWakeUp() {
        let rounds = 20_000
        let events = EventCount()
        let turn = Atomic<Int>(0)
        let timedOut = Atomic<Int>(0)
        let group = DispatchGroup()
        for side in 0 ..< 2 {
            startThread(in: group) {
                for round in 0 ..< rounds {
                    let mine = 2 * round + side
                    guard events.wait(until: { turn.load(ordering: .acquiring) == mine }, timeoutNanoseconds: 10_000_000_000) else {
                        timedOut.add(1, ordering: .relaxed)
                        turn.store(-1, ordering: .releasing)  // let the other side give up too
                        events.notify()
                        break
                    }
                    turn.store(mine + 1, ordering: .releasing)
                    events.notify()
                }
            }
        }
        let finished = group.wait(timeout: .now() + 120) == .success
        #expect(finished)
        #expect(timedOut.load(ordering: .relaxed) == 0)
        #expect(turn.load(ordering: .relaxed) == 2 * rounds)
    }

    /// Waiters that are surely parked (the condition turns true 20 ms after they start) are woken by a
    /// notify, each time, and all of them by one notify.
    @Test func oneNotifyWakesEveryParkedWaiter() {
        let events = EventCount()
        for round in 1 ... 5 {
            let flag = Atomic<Int>(0)
            let woken = Atomic<Int>(0)
            let group = DispatchGroup()
            for _ in 0 ..< 4 {
                startThread(in: group) {
                    if events.wait(until: { flag.load(ordering: .acquiring) == round }, timeoutNanoseconds: 10_000_000_000) {
                        woken.add(1, ordering: .relaxed)
                    }
                }
            }
            usleep(20_000)
            flag.store(round, ordering: .releasing)
            events.notify()
            #expect(group.wait(timeout: .now() + 30) == .success)
            #expect(woken.load(ordering: .relaxed) == 4)
        }
    }

    /// A condition that never turns true: the wait gives up after its timeout (not before), and a
    /// notify for another condition (a spurious wake-up for this waiter) does not end it.
    @Test func aWaitGivesUpAfterItsTimeoutDespiteNotifiesForOthers() {
        let events = EventCount()
        let stop = Atomic<Bool>(false)
        let group = DispatchGroup()
        startThread(in: group) {
            while !stop.load(ordering: .relaxed) {
                events.notify()
                usleep(1000)
            }
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let satisfied = events.wait(until: { false }, timeoutNanoseconds: 100_000_000)
        let elapsed = DispatchTime.now().uptimeNanoseconds - start
        stop.store(true, ordering: .relaxed)
        group.wait()
        #expect(!satisfied)
        #expect(elapsed >= 100_000_000)
    }

    /// A condition already true returns at once; a notify with nobody waiting returns at once.
    @Test func readyConditionAndLonelyNotifyReturnAtOnce() {
        let events = EventCount()
        #expect(events.wait(until: { true }, timeoutNanoseconds: 0))
        for _ in 0 ..< 1000 { events.notify() }
        #expect(!events.wait(until: { false }, timeoutNanoseconds: 1_000_000))
    }
}
