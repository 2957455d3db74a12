import ArgumentParser
import Foundation
import TokenfeedClient
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedMixing
import TokenfeedProtocol
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

    @Flag(help: "Skip starting the daemon (sections 1-3 only).")
    var offlineOnly = false

    @Option(help: "Tokens generated per dataset.")
    var tokensPerDataset = 120_000

    @Option(help: "Ranks of the demo job.")
    var worldSize = 4

    @Option(help: "Sequences per rank per step.")
    var batchSize = 3

    func run() throws {
        let dataRoot = out + "/data"
        try FileManager.default.createDirectory(atPath: dataRoot, withIntermediateDirectories: true)
        // Folders resolved against the data root, not yet required: the corpus goes where the
        // curriculum will read each dataset (nanotron: DATA_ROOT/<read path name>).
        let names: Curriculum
        do { names = try CurriculumLoader.load(path: curriculum, dataRoot: dataRoot, requireFolders: false) } catch {
            printError(error.description)
            throw ExitCode(1)
        }
        section("1. Generate a corpus for the \(names.datasets.count) datasets of \(curriculum)")
        let started = Date()
        let folders = names.datasets.map { (name: $0.name, folder: $0.folder ?? dataRoot + "/" + $0.name) }
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

        if offlineOnly { return }
        section("4. Serve it: tokenfeedd on a Unix socket, \(worldSize) ranks reading through the Swift client")
        try serve(loaded, dataRoot: dataRoot)
    }

    /// Starts `tokenfeedd` on the generated corpus and reads, through the socket, the steps around
    /// each stage boundary as `worldSize` ranks resuming from a cursor; then prints the daemon's stats.
    private func serve(_ loaded: Curriculum, dataRoot: String) throws {
        let socket = out + "/tokenfeed.sock"
        let daemon = try DaemonChild(socket: socket, arguments: [
            "--curriculum", curriculum, "--data-root", dataRoot, "--state-dir", out + "/state"])
        defer {
            let status = daemon.stop()
            print("\ntokenfeedd stopped (SIGTERM), exit status \(status.map(String.init) ?? "none: killed after 10 s")")
        }
        print("started: \(daemon.executable) --curriculum \(curriculum) --data-root \(dataRoot) --socket \(socket)")
        let world = UInt32(worldSize), batch = UInt32(batchSize)
        let probe = try TokenfeedClient.connect(socketPath: socket, rank: 0, worldSize: world, batchSize: batch)
        let fingerprint = probe.welcome.fingerprint
        probe.close()
        print(String(format: "stream fingerprint %016llx; %d ranks × %d sequences per step", fingerprint, worldSize, batchSize))
        let globalBatch = UInt64(worldSize * batchSize)
        for s in 1 ..< loaded.stages.count {
            let plan = StreamPlan(curriculum: loaded)
            let boundaryStep = plan.firstSequence(ofStage: s) / globalBatch
            print("\nresume all ranks at step \(boundaryStep - 1) (cursor) and read two steps; stage \"\(loaded.stages[s].name)\" starts at step \(boundaryStep):")
            let cursor = Cursor(fingerprint: fingerprint, nextStep: boundaryStep - 1, worldSize: world, batchSize: batch)
            var clients: [TokenfeedClient] = []
            for rank in 0 ..< world {
                clients.append(try TokenfeedClient.connect(socketPath: socket, rank: rank, worldSize: world, batchSize: batch, cursor: cursor))
            }
            for _ in 0 ..< 2 {
                for client in clients {
                    guard let received = try client.next() else { continue }
                    let cells = (0 ..< received.batchSize).map { j in
                        "\(received.row(j).sequenceIndex):\(received.stageName(row: j).prefix(12))/\(received.datasetName(row: j).prefix(18))"
                    }
                    print("  step \(received.step) rank \(received.rank)  " + cells.joined(separator: "  "))
                }
            }
            for client in clients { client.close() }
        }
        print("")
        try StatsCommand.parse(["--socket", socket]).run()
    }

    private func section(_ title: String) {
        print("\n== \(title)")
    }
}
