import ArgumentParser

/// `tokenfeed shard …`: make, check and look at token shards.
struct Shard: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import, verify and inspect token shards (docs/SHARDS.md).",
        subcommands: [ShardImport.self, ShardVerify.self, ShardInspect.self])
}
