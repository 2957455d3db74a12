import TokenfeedProtocol
import TokenfeedSystem

/// A Stats message as one JSON object (keys in a fixed order), for `tokenfeed stats --json` and
/// the state directory's `stats.json`.
public enum StatsJSON {
    /// Renders `stats`.
    public static func render(_ stats: Stats) -> String {
        let string = JSONText.string
        func number(_ value: Double) -> String { value.isFinite ? "\(value)" : "null" }
        var s = "{\"current_stage\":\(stats.currentStage),\"sequence_length\":\(stats.sequenceLength)"
        s += ",\"position_sequence\":\(stats.positionSequence),\"position_token\":\(stats.positionSequence &* UInt64(stats.sequenceLength))"
        s += ",\"tokens_served\":\(stats.tokensServed),\"batches_served\":\(stats.batchesServed)"
        s += ",\"ring_capacity\":\(stats.ringCapacity),\"ring_occupied\":\(stats.ringOccupied)"
        s += ",\"preload_bytes\":\(stats.preloadBytes),\"preload_budget_bytes\":\(stats.preloadBudgetBytes)"
        s += ",\"uptime_ms\":\(stats.uptimeMilliseconds),\"stages\":["
        s += stats.stages.map { "{\"name\":\(string($0.name)),\"start_token\":\($0.startToken),\"end_token\":\($0.endToken)}" }.joined(separator: ",")
        s += "],\"datasets\":["
        s += stats.datasets.map {
            "{\"name\":\(string($0.name)),\"target_share\":\(number($0.targetShare)),\"realized_share\":\(number($0.realizedShare))," +
            "\"tokens_served\":\($0.tokensServed),\"epoch\":\($0.epoch),\"quarantined_shards\":\($0.quarantinedShards)}"
        }.joined(separator: ",")
        s += "],\"clients\":["
        s += stats.clients.map {
            "{\"rank\":\($0.rank),\"world_size\":\($0.worldSize),\"batch_size\":\($0.batchSize),\"credits\":\($0.credits)," +
            "\"next_step\":\($0.nextStep),\"batches_sent\":\($0.batchesSent),\"wait_ns_total\":\($0.waitNanosecondsTotal)," +
            "\"wait_ns_max\":\($0.waitNanosecondsMax),\"job_id\":\(string($0.jobID))}"
        }.joined(separator: ",")
        return s + "]}"
    }
}
