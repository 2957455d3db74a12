import TokenfeedEngine

/// The memory a session's ``Preloader`` holds: its slot pool is allocated (and faulted in) once
/// when the feed starts, `max(2, budget ÷ (largest frame + largest compressed frame))` slots of
/// both sizes rounded to 64 bytes — the same formula as `Preloader.init`.
enum PreloadFootprint {
    static func residentBytes(stream: GlobalStream, budgetBytes: Int) -> Int {
        let shards = stream.datasets.flatMap(\.shards)
        let frame = ((shards.map { $0.metadata.tokensPerFrame * $0.metadata.tokenWidth.bytes }.max() ?? 64) + 63) & ~63
        let scratch = ((shards.map(\.largestFrame).max() ?? 64) + 63) & ~63
        return max(2, budgetBytes / (frame + scratch)) * (frame + scratch)
    }
}
