import Dispatch
import Foundation
import Testing
import TestSupport
@testable import TokenfeedServer
import TokenfeedSystem

/// State files are written whole by concurrent writers (several sessions closing at once).
@Suite struct StateFileTests {
    @Test func concurrentAtomicWritesOfOnePathAllSucceed() throws {
        let dir = TemporaryDirectory("tokenfeed-state")
        let path = dir.sub("stats.json")
        let failures = ParallelFailures()
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            do { try writeTextFileAtomically(path, String(repeating: "\(i % 10)", count: 4096) + "\n") } catch {
                failures.record("\(error)")
            }
        }
        #expect(failures.messages.isEmpty, "\(failures.messages)")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.count == 4097 && Set(text.dropLast()).count == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["stats.json"])
    }
}

private final class ParallelFailures: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func record(_ message: String) { lock.lock(); list.append(message); lock.unlock() }
    var messages: [String] { lock.lock(); defer { lock.unlock() }; return list }
}
