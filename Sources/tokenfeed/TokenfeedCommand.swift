import ArgumentParser
import CommandLineSupport
import TokenfeedProtocol

@main
struct Tokenfeed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenfeed",
        abstract: "Tools for tokenfeed: shards, curriculum plans, dumps and stats.",
        version: ReleaseVersion.line(for: "tokenfeed"),
        subcommands: [Shard.self, Dump.self, Export.self, Demo.self, Bench.self, Plan.self, StatsCommand.self, CursorCommand.self])

    /// Exits 0 on success, 1 on failure, 2 on a usage error (``ExitStatus``).
    static func main() { ExitStatus.main(Tokenfeed.self) }
}
