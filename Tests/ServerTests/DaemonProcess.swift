import Foundation
import TestSupport

/// The built `tokenfeedd` running as a child process.
final class DaemonProcess {
    let process = Process()
    private let errors = Pipe()
    private let errorText = LockedText()

    /// Starts `executable` (default: the built tokenfeedd) and waits (bounded) until `socket` accepts
    /// connections or the process exits.
    /// - Parameters:
    ///   - journalStream: `JOURNAL_STREAM` for the daemon: `.matching` names its standard error's pipe
    ///     (as systemd does when stderr is the journal), `.other` a stream that is not its stderr.
    init(_ arguments: [String], socket: String, executable: String = productsFolder + "/tokenfeedd",
         journalStream: JournalStream = .none) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if journalStream != .none {
            var info = stat()
            fstat(errors.fileHandleForWriting.fileDescriptor, &info)
            var environment = ProcessInfo.processInfo.environment
            environment["JOURNAL_STREAM"] = "\(info.st_dev):\(journalStream == .matching ? UInt64(info.st_ino) : UInt64(info.st_ino) + 1)"
            process.environment = environment
        }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        let sink = errorText
        errors.fileHandleForReading.readabilityHandler = { handle in sink.append(handle.availableData) }
        try process.run()
        _ = eventually(within: 20) { !process.isRunning || (try? RawConnection(path: socket)) != nil }
    }

    /// What the daemon wrote to standard error so far.
    var stderr: String { errorText.text }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    func terminate() -> Int32? {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        return waitForExit()
    }

    /// Waits up to 30 s for the process to exit (a loaded machine can take several seconds to stop a
    /// daemon that is serving); nil if it did not.
    func waitForExit() -> Int32? {
        guard eventually(within: 30, { !process.isRunning }) else {
            kill(process.processIdentifier, SIGKILL)
            return nil
        }
        process.waitUntilExit()
        errors.fileHandleForReading.readabilityHandler = nil
        errorText.append(errors.fileHandleForReading.readDataToEndOfFile())
        return process.terminationStatus
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// What `JOURNAL_STREAM` a daemon started by the tests sees.
enum JournalStream { case none, matching, other }

/// Text appended from another thread.
final class LockedText: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ chunk: Data) { lock.withLock { data.append(chunk) } }
    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
}
