import Foundation
import TestSupport
import TokenfeedShards

/// The corpus the probe serves: `datasetCount` synthetic datasets of two shards each (uint32 tokens,
/// 512-token frames, about 24,000 tokens a dataset, so each wraps into several epochs), written as
/// shard files with manifests, and a two-stage curriculum that mixes all of them with unequal weights
/// (the stage switch falls in the warm-up).
struct ProbeCorpus {
    static let sequenceLength = 128
    static let tokensPerFrame = 512
    let folder: TemporaryDirectory
    let datasetCount: Int

    var dataRoot: String { folder.sub("data") }
    var curriculumPath: String { folder.sub("curriculum.yaml") }

    init(datasetCount: Int) throws {
        folder = TemporaryDirectory("tfalloc")
        self.datasetCount = datasetCount
        for d in 0 ..< datasetCount {
            let path = folder.sub("data/d\(d)", create: true)
            for s in 0 ..< 2 {
                let documents = SyntheticCorpus.documents(seed: UInt64(1_000 + 10 * d + s), count: 40, vocabulary: 128_256, meanLength: 300)
                try SyntheticCorpus.writeShard(documents, path: path + "/shard-\(s).zst", width: .uint32, vocabulary: 128_256,
                                               tokensPerFrame: Self.tokensPerFrame)
            }
            try SyntheticCorpus.writeManifest(folder: path)
        }
        func mixture(_ weight: (Int) -> Int) -> String {
            "{" + (0 ..< datasetCount).map { "d\($0): \(weight($0))" }.joined(separator: ", ") + "}"
        }
        let yaml = """
        sequence_length: \(Self.sequenceLength)
        seed: 7
        stages:
          - name: first
            start: 0
            end: 40000
            mixture: \(mixture { 1 + $0 % 3 })
          - name: second
            start: 40000
            end: 100M
            mixture: \(mixture { 3 - $0 % 3 })

        """
        try yaml.write(toFile: curriculumPath, atomically: true, encoding: .utf8)
    }
}
