#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ArgumentParser
import CommandLineSupport
import TokenfeedServer

/// What `tokenfeedd` does when it cannot start (docs/OPERATIONS.md, "Signals, exit status, logs"):
/// prints `tokenfeedd: MESSAGE` on standard error, answers the trainers systemd queued on an
/// activated socket with the message (``StartupFailureAnswer``), and exits with the kind's status.
enum StartupFailure {
    /// The exit status for each kind of startup failure. Every kind is a failure (1: the command
    /// line was right, its inputs or the system were not); usage errors (2) are found before, by
    /// the parser and `validate()`. Exhaustive, so a new kind must be given its status here.
    static func exitStatus(_ kind: ServerStartupError.Kind) -> Int32 {
        switch kind {
        case .stateDirectory, .curriculum, .data, .corruptData, .preloadBudget, .logFile, .metricsEndpoint, .socketInUse, .socket:
            ExitStatus.failure
        }
    }

    /// Reports `error` and returns the exit to throw from `run()`.
    static func exit(_ error: ServerStartupError) -> ExitCode {
        var line = "tokenfeedd: \(error.message)\n"
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
        StartupFailureAnswer.answerPending(reason: error.message)
        return ExitCode(exitStatus(error.kind))
    }
}
