#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ArgumentParser

/// tokenfeed's exit status convention, the same for every command of `tokenfeed` and `tokenfeedd`:
///
/// | status | meaning |
/// |---:|---|
/// | 0 | success (and `--help`, `--version`) |
/// | 1 | failure: bad data, a file or config that does not load, a refused cursor, a daemon that cannot start |
/// | 2 | usage: an unknown or missing option or argument, a value out of range, options that contradict |
///
/// swift-argument-parser exits with 64 (`EX_USAGE`) on usage errors; ``ExitStatus/main(_:)`` maps
/// that to 2, as POSIX utilities and Python's argparse do, so a script checks one convention.
public enum ExitStatus {
    public static let success: Int32 = 0
    public static let failure: Int32 = 1
    public static let usage: Int32 = 2

    /// Parses the command line as `Command` does, runs it and exits with the convention above.
    /// - Parameter onUsageError: called with the error's message (without the usage lines) before
    ///   exiting with ``usage`` (the daemon answers the connections queued on its socket with it).
    public static func main<Command: ParsableCommand>(_ command: Command.Type, onUsageError: (String) -> Void = { _ in }) -> Never {
        do {
            var parsed = try Command.parseAsRoot()
            try parsed.run()
            exit(success)
        } catch {
            if Command.exitCode(for: error) == .validationFailure {
                onUsageError(Command.message(for: error))
                var message = Command.fullMessage(for: error) + "\n"
                message.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
                exit(usage)
            }
            Command.exit(withError: error)
        }
    }
}
