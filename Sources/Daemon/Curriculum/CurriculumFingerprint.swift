import TokenfeedSystem

/// The 128-bit FNV-1a digest of a curriculum's canonical serialization.
///
/// Stable across machines and runs (it never uses Swift's randomly seeded `Hasher`).
enum CurriculumFingerprint {
    /// Hex digest of everything that shapes the stream.
    static func digest(sequenceLength: Int, seed: UInt64, packing: PackingSpec, shuffle: ShuffleSpec = .off, order: StreamOrder = .quota,
                       datasets: [DatasetSpec], stages: [Stage]) -> String {
        var text = "tokenfeed-curriculum-v1\nsequence_length=\(sequenceLength)\nseed=\(seed)\n"
        switch packing {
        case .concat: text += "packing=concat\n"
        case .bestfit(let pad, let lookahead): text += "packing=bestfit,\(pad),\(lookahead)\n"
        }
        if case .rows(let span) = shuffle { text += "shuffle=rows,\(span)\n" }
        if order != .quota { text += "order=\(order.rawValue)\n" }
        for dataset in datasets { text += "dataset=\(dataset.identity.utf8.count):\(dataset.identity)\n" }
        for stage in stages {
            text += "stage=\(stage.startToken),\(stage.endToken)"
            for weight in stage.weights {
                text += ";\(weight.dataset)=\(weight.units)"
                if order == .nanotron { text += "@\(weight.written)" }
            }
            text += "\n"
        }
        return Hex.padded(FNV1a128.hash(text.utf8))
    }
}
