import ArgumentParser
import Foundation
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedMixing
import TokenfeedShards

/// `tokenfeed demo`: the whole SmolLM3 curriculum on a generated corpus.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the SmolLM3 three-stage curriculum on a generated corpus: plan it, then show the stream at each stage boundary.",
        discussion: """
            Generates a small corpus (synthetic Zipf tokens, EOS-terminated documents) for every dataset of the official \
            SmolLM3 nanotron config, plans the curriculum over it, and packs the steps just before and after each stage \
            boundary, showing that the mixture switches at exactly the first sequence at or past the boundary token.
            """)

    @Option(help: "The curriculum (default: the official SmolLM3 stage-3 config, which holds all three stages).")
    var curriculum = "fixtures/curricula/smollm3/stage3_9T_11T.yaml"

    @Option(help: "Working folder: the corpus goes to OUT/data.")
    var out = "demo-out"

    @Option(help: "Tokens generated per dataset.")
    var tokensPerDataset = 120_000

    @Option(help: "Ranks of the demo job.")
    var worldSize = 4

    @Option(help: "Sequences per rank per step.")
    var batchSize = 3

    func run() throws {
        let dataRoot = out + "/data"
        try FileManager.default.createDirectory(atPath: dataRoot, withIntermediateDirectories: true)
        // Without a data root the loader does not require the folders; the corpus goes to DATA_ROOT/<name>.
        let names: Curriculum
        do { names = try CurriculumLoader.load(path: curriculum, dataRoot: nil) } catch {
            printError(error.description)
            throw ExitCode(1)
        }
        section("1. Generate a corpus for the \(names.datasets.count) datasets of \(curriculum)")
        let started = Date()
        let folders = names.datasets.map { (name: $0.name, folder: dataRoot + "/" + $0.name) }
        let made = try DemoCorpus(tokensPerDataset: tokensPerDataset, shardsPerDataset: 3, tokensPerFrame: 16_384).generate(folders)
        let loaded: Curriculum
        do { loaded = try CurriculumLoader.load(path: curriculum, dataRoot: dataRoot) } catch {
            printError(error.description)
            throw ExitCode(1)
        }
        print("wrote \(made) dataset folders (\(loaded.datasets.count - made) already there) under \(dataRoot) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")

        section("2. Plan: stages, mixtures, epochs (tokenfeed plan \(curriculum) --data-root \(dataRoot))")
        try Plan.parse([curriculum, "--data-root", dataRoot]).run()

        section("3. The stream at each stage boundary (world size \(worldSize), \(batchSize) sequences per rank)")
        let stream: GlobalStream
        do { stream = try GlobalStream(curriculum: loaded) } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        let globalBatch = UInt64(worldSize * batchSize)
        let frames = DirectFrameProvider(stream: stream)
        for s in 1 ..< loaded.stages.count {
            let first = stream.plan.firstSequence(ofStage: s)
            let boundaryStep = first / globalBatch
            print("\nstage \"\(loaded.stages[s].name)\" starts at token \(loaded.stages[s].startToken) = sequence \(first) (\(first) × \(loaded.sequenceLength) ≥ boundary), step \(boundaryStep) of global batch \(globalBatch)")
            for step in boundaryStep - 1 ... boundaryStep {
                for rank in 0 ..< worldSize {
                    var assembler = BatchAssembler(stream: stream, slice: RankSlice(rank: rank, worldSize: worldSize, batchSize: batchSize))
                    let block = UnsafeMutableRawBufferPointer.allocate(byteCount: assembler.tokenBlockBytes, alignment: 64)
                    defer { block.deallocate() }
                    try assembler.assemble(step: step, into: block, frames: frames)
                    let cells = assembler.records.map { r in
                        "\(r.sequence):\(loaded.stages[Int(r.stage)].name.prefix(12))/\(loaded.datasets[Int(r.dataset)].name.prefix(18))"
                    }
                    print("  step \(step) rank \(rank)  " + cells.joined(separator: "  "))
                }
            }
        }
    }

    private func section(_ title: String) {
        print("\n== \(title)")
    }
}
