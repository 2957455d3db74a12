import ArgumentParser
import Logging
import TokenfeedCurriculum
import TokenfeedServer

// The daemon's option types as command-line arguments. A value that does not parse is a usage error
// from swift-argument-parser naming the option, with the option's help (its accepted forms) and, for
// the enums, the values it takes. The same types are read from the config file (``ConfigFile``).

/// `--preload-bytes`, `--session-memory`, `--total-memory`, `--outbox-bytes`: `256MiB`, `268435456`, `256M`.
extension ByteCount: ExpressibleByArgument {}
/// `--socket-mode`: `0660`.
extension FileMode: ExpressibleByArgument {}
/// `--metrics-listen`: `127.0.0.1:9464`, `[::1]:9464`, `localhost:9464`.
extension MetricsAddress: ExpressibleByArgument {
    public init?(argument: String) {
        do throws(MetricsAddressError) { try self.init(parsing: argument) } catch { return nil }
    }
}
/// `--on-corrupt fail|quarantine`.
extension CorruptDataPolicy: ExpressibleByArgument {}
/// `--verify-shards none|startup`.
extension ShardVerificationMode: ExpressibleByArgument {}
/// `--order quota|nanotron`.
extension StreamOrder: ExpressibleByArgument {}
/// `--log-format text|json`.
extension LogFormat: ExpressibleByArgument {}
/// `--log-level trace|debug|info|notice|warning|error|critical` (swift-log's levels, by their names).
extension Logger.Level: @retroactive ExpressibleByArgument {}
