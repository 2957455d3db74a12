import ArgumentParser

/// `tokenfeed shard …`: make, check and look at token shards.
struct Shard: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import, verify, inspect, upgrade and index token shards (docs/SHARDS.md).",
        subcommands: [ShardImport.self, ShardVerify.self, ShardInspect.self, ShardUpgradeCommand.self, ShardIndexCommand.self])
}
