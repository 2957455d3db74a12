import ArgumentParser
import TokenfeedProtocol

@main
struct Tokenfeed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenfeed",
        abstract: "Tools for tokenfeed: shards, curriculum plans, dumps and stats.",
        version: ReleaseVersion.line(for: "tokenfeed"),
        subcommands: [Shard.self, Dump.self, Export.self, Demo.self, Bench.self, Plan.self, StatsCommand.self, CursorCommand.self])
}
