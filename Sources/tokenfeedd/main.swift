import CommandLineSupport
import TokenfeedServer

// A usage error — a bad option, or a config file that does not parse — exits 2 before anything
// starts; a socket-activated daemon first answers the trainers systemd queued on its socket with the
// reason, as it does for every startup failure (StartupFailure.swift).
ExitStatus.main(TokenfeedDaemon.self, onUsageError: { message in StartupFailureAnswer.answerPending(reason: message) })
