import Foundation
import Testing
import TestSupport
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedMixing
import TokenfeedShards

/// Jumping anywhere: a step deep into the SmolLM3 run (step 3,000,000 of 4,720,000, 56 datasets
/// in its stage) is packed from metadata and the few frames it needs, with no replay of the mixer,
/// and its tokens are the right windows of their datasets.
@Suite struct SmolLM3JumpTests {
    @Test func stepThreeMillionOfSmolLM3IsPackedDirectly() throws {
        let dir = TemporaryDirectory("tokenfeed-smollm3")
        let path = Fixtures.path("curricula/smollm3/stage3_9T_11T.yaml")
        let names = try CurriculumLoader.load(path: path, dataRoot: dir.sub("data"), requireFolders: false)
        // A tiny corpus: two shards of a few documents for each of the 71 datasets (72 read paths;
        // stack-edu-HTML is one dataset), in the folder each is read from.
        for (d, dataset) in names.datasets.enumerated() {
            let folder = try #require(dataset.folder)
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for s in 0 ..< 2 {
                let docs = SyntheticCorpus.documents(seed: UInt64(d * 2 + s), count: 6, vocabulary: 128_256, meanLength: 400)
                try SyntheticCorpus.writeShard(docs, path: folder + "/\(s).zst", vocabulary: 128_256, tokensPerFrame: 512)
            }
        }
        let curriculum = try CurriculumLoader.load(path: path, dataRoot: dir.sub("data"))
        let stream = try GlobalStream(curriculum: curriculum)
        // nanotron's shape: dp 192 × micro batch 3. 0-based step 3,450,000 (nanotron's step 3,450,001) starts stage 2, 4,198,000 stage 3.
        let slice = RankSlice(rank: 191, worldSize: 192, batchSize: 3)
        var assembler = BatchAssembler(stream: stream, slice: slice)
        let block = UnsafeMutableRawBufferPointer.allocate(byteCount: assembler.tokenBlockBytes, alignment: 64)
        defer { block.deallocate() }
        var references: [Int: ReferenceDataset] = [:]
        for step in [UInt64(3_000_000), 3_449_999, 4_197_999, 4_198_000, 4_719_999] {
            try assembler.assemble(step: step, into: block, frames: DirectFrameProvider(stream: stream))
            let expectedStage = step < 3_450_000 ? 0 : step < 4_198_000 ? 1 : 2
            for (j, record) in assembler.records.enumerated() {
                #expect(record.sequence == step * 576 + 573 + UInt64(j))
                #expect(record.stage == UInt32(expectedStage), "step \(step)")
                let source = stream.plan.source(ofSequence: record.sequence)
                #expect(Int(record.dataset) == source.dataset)
                let dataset = curriculum.datasets[source.dataset]
                let reference = try references[source.dataset]
                    ?? ReferenceDataset(folder: dataset.folder!, name: dataset.identity, seed: curriculum.seed)
                references[source.dataset] = reference
                let start = Int(source.ordinal) * 4096
                let row = (0 ..< 4097).map { block.load(fromByteOffset: (j * 4097 + $0) * 4, as: UInt32.self) }
                #expect(row == reference.window(start, 4097), "step \(step) row \(j)")
            }
        }
        #expect(stream.plan.stageIndex(ofSequence: 3_450_000 * 576) == 1)
        #expect(curriculum.stages[1].weights.count == 46 && curriculum.stages[2].weights.count == 56)
    }
}
