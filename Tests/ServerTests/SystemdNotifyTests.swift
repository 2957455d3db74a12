#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import TestSupport
import TokenfeedClient
@testable import TokenfeedServer
import TokenfeedSystem

/// What the daemon tells systemd (sd_notify): READY=1 with a STATUS naming the socket actually
/// served, WATCHDOG=1 at half of WATCHDOG_USEC while its queues answer, STOPPING=1 at shutdown —
/// under real socket activation (systemd-socket-activate) with a real notify socket.
@Suite struct SystemdNotifyTests {
    /// A datagram socket standing in for systemd's `NOTIFY_SOCKET`.
    final class NotifySocket {
        let fd: Int32
        let path: String

        init(path: String) throws {
            self.path = path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { throw POSIXError(.EMFILE) }
            try UnixSocketAddress(path: path).bind(fd)
            var timeout = timeval(tv_sec: isThreadSanitized ? 60 : 15, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit { close(fd) }

        /// The next datagram, or nil after the receive timeout.
        func next() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : nil
        }

        /// Datagrams until one contains `text` (nil if none came in time), all of them in `seen`.
        func awaitMessage(containing text: String, seen: inout [String]) -> String? {
            while let message = next() {
                seen.append(message)
                if message.contains(text) { return message }
            }
            return nil
        }
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-socket-activate")))
    func readyStatusWatchdogAndStopping() throws {
        let fixture = try ServerFixture()
        let activated = fixture.dir.sub("activated.sock")
        let notify = try NotifySocket(path: fixture.dir.sub("notify"))
        let daemon = try DaemonProcess(["-l", activated, "-E", "NOTIFY_SOCKET=" + notify.path, "-E", "WATCHDOG_USEC=400000",
                                        productsFolder + "/tokenfeedd", "--curriculum", fixture.curriculumPath,
                                        "--data-root", fixture.dataRoot, "--socket", fixture.dir.sub("unused.sock"), "--log-level", "error"],
                                       socket: activated, executable: "/usr/bin/systemd-socket-activate")
        var seen: [String] = []
        let ready = try #require(notify.awaitMessage(containing: "READY=1", seen: &seen), "\(seen) \(daemon.stderr)")
        #expect(ready.contains("STATUS=serving \(activated): "), "names the socket served, not --socket: \(ready)")
        #expect(!ready.contains("unused.sock"))

        let client = try TokenfeedClient.connect(socketPath: activated, rank: 0, worldSize: 1, batchSize: 2)
        #expect(try client.rows(batches: 2).count == 4)
        var pings = 0
        var status = ""
        while pings < 3, let ping = notify.awaitMessage(containing: "WATCHDOG=1", seen: &seen) {
            pings += 1
            status = ping
        }
        #expect(pings == 3, "\(seen)")
        #expect(status.contains("1 connections, stage "), "\(status)")
        #expect(status.contains("sequence ") && !status.contains("sequence 0 of"), "the position served so far: \(status)")
        client.close()

        kill(daemon.process.processIdentifier, SIGTERM)
        #expect(notify.awaitMessage(containing: "STOPPING=1", seen: &seen) != nil, "\(seen)")
        #expect(daemon.waitForExit() == 0, "\(daemon.stderr)")
    }

    /// A socket-activated daemon that cannot start answers the trainer that woke it with a typed
    /// error naming the cause, not a reset connection.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-socket-activate")))
    func aFailedStartAnswersTheQueuedConnection() throws {
        let fixture = try ServerFixture()
        let activated = fixture.dir.sub("activated.sock")
        let missing = fixture.dir.sub("no-such-curriculum.yaml")
        let daemon = try DaemonProcess(["-l", activated, productsFolder + "/tokenfeedd", "--curriculum", missing,
                                        "--data-root", fixture.dataRoot, "--socket", fixture.dir.sub("unused.sock")],
                                       socket: activated, executable: "/usr/bin/systemd-socket-activate")
        do {
            _ = try TokenfeedClient.connect(socketPath: activated, rank: 0, worldSize: 1, batchSize: 2)
            Issue.record("a daemon that cannot start served a session")
        } catch {
            #expect("\(error)".contains("could not start") && "\(error)".contains(missing), "\(error)")
        }
        #expect(daemon.waitForExit() == 1, "\(daemon.stderr)")
    }

    @Test func theWatchdogIntervalIsOnlyTakenForThisProcess() {
        #expect(ServiceWatchdog.interval(usec: "30000000", pid: nil) == 30_000_000)
        #expect(ServiceWatchdog.interval(usec: "30000000", pid: "\(getpid())") == 30_000_000)
        #expect(ServiceWatchdog.interval(usec: "30000000", pid: "\(getpid() + 1)") == nil)
        #expect(ServiceWatchdog.interval(usec: "0", pid: nil) == nil)
        #expect(ServiceWatchdog.interval(usec: "x", pid: nil) == nil)
        #expect(ServiceWatchdog.interval(usec: nil, pid: nil) == nil)
    }
}
