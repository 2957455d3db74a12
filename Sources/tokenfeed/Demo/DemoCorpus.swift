import Foundation
import TokenfeedCurriculum
import TokenfeedMixing
import TokenfeedShards
import TokenfeedSystem

/// Generates a small synthetic corpus for every dataset a curriculum names: a few shards per dataset
/// folder, documents of Zipf-distributed Llama-3 ids ending with EOS (128001), each dataset with its
/// own seed and its own document-length scale, so dumps show which dataset a sequence came from.
struct DemoCorpus {
    static let vocabulary: UInt32 = 128_256
    static let eos: UInt32 = 128_001

    var tokensPerDataset: Int
    var shardsPerDataset: Int
    var tokensPerFrame: Int

    /// Writes every missing dataset folder. Returns the number of datasets written.
    func generate(_ datasets: [(name: String, folder: String)]) throws -> Int {
        var written = 0
        for dataset in datasets {
            let folder = dataset.folder
            if FileManager.default.fileExists(atPath: folder) { continue }
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            var rng = SplitMix64(seed: FNV1a64.hash(dataset.name))
            // Mean document length from 200 to 3,000 tokens, fixed per dataset.
            let meanLength = 200 + Int(rng.next(below: 2800))
            let perShard = tokensPerDataset / shardsPerDataset
            for s in 0 ..< shardsPerDataset {
                let writer = try ShardWriter(path: folder + "/" + String(format: "%05d.zst", s), tokenWidth: .uint32,
                                             vocabularySize: Self.vocabulary, tokensPerFrame: tokensPerFrame, level: 1)
                var tokens = 0
                var document: [UInt32] = []
                while tokens < perShard {
                    let length = 2 + Int(rng.next(below: UInt64(2 * meanLength)))
                    document.removeAll(keepingCapacity: true)
                    for _ in 0 ..< length - 1 {
                        // Zipf-like: id = V^(u²), small ids most frequent.
                        let u = Double(rng.next() >> 11) / Double(1 << 53)
                        document.append(UInt32(min(Double(Self.vocabulary - 2), pow(Double(Self.vocabulary - 1), u * u))))
                    }
                    document.append(Self.eos)
                    try writer.write(tokens: document)
                    try writer.endDocument()
                    tokens += length
                }
                try writer.finish()
            }
            try DatasetManifest.build(shardPaths: try DatasetFolder.shardPaths(in: folder)).write(folder: folder)
            written += 1
        }
        return written
    }
}
