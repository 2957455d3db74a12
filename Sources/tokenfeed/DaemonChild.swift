import ArgumentParser
import Foundation

/// A `tokenfeedd` child process (the binary next to this `tokenfeed`), for the commands that serve
/// through a real daemon (`demo`, `bench`): started on a socket and waited for until it listens,
/// stopped with SIGTERM and a bounded wait.
final class DaemonChild {
    let socket: String
    let executable: String
    private let process = Process()

    /// Starts `tokenfeedd --socket SOCKET ARGUMENTS… --log-level warning` and waits (at most 60 s)
    /// until the socket exists.
    /// - Throws: `ValidationError` when the binary is missing or the daemon exits or does not listen in time.
    init(socket: String, arguments: [String]) throws {
        self.socket = socket
        executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("tokenfeedd").path
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw ValidationError("tokenfeedd not found next to tokenfeed (\(executable)); build both products")
        }
        try? FileManager.default.removeItem(atPath: socket)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--socket", socket] + arguments + ["--log-level", "warning"]
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: socket) {
            guard process.isRunning, Date() < deadline else {
                _ = stop()
                throw ValidationError("tokenfeedd did not start listening on \(socket)")
            }
            usleep(10_000)
        }
    }

    /// Sends SIGTERM and waits up to `seconds` for the daemon to exit; then SIGKILL.
    /// - Returns: its exit status, or nil when it had to be killed.
    func stop(seconds: Double = 10) -> Int32? {
        if process.isRunning { process.terminate() }
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        process.waitUntilExit()
        return process.terminationStatus
    }
}
