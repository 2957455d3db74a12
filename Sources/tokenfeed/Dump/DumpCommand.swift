#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import struct TokenfeedProtocol.Hello
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedShards
import TokenfeedSystem

/// `tokenfeed dump`: what a given step and rank receives.
struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print what a step and rank receives: dataset, stage, document boundaries, provenance, tokens.",
        discussion: """
            --offline CURRICULUM --data-root DIR computes the batches from the shard files, without a daemon. \
            --socket PATH connects to a running tokenfeedd as a client of the given rank and prints the batches it \
            receives, starting at step 0 or at the cursor of --cursor-in FILE; --cursor-out FILE writes the cursor \
            after the last batch printed. Both print the same lines for the same step and rank. \
            With bestfit packing, a far --step needs the row counts of every shard before it; --cache-dir DIR \
            keeps them (one small file per dataset, checked before use), so only the first far dump counts. \
            --json prints one JSON object per line, one per sequence (keys: step, rank, sequence, stage, dataset, \
            epoch, tokens, cu_seqlens, loss_mask when padding exists, provenance).
            """)

    @Option(help: "Compute batches from this curriculum and the shard files, without a daemon.")
    var offline: String?

    @Option(help: "Receive batches from the tokenfeedd listening on this Unix socket.")
    var socket: String?

    @Option(help: "With --socket: resume from the cursor in this file (tfc1-… text).")
    var cursorIn: String?

    @Option(help: "With --socket: write the cursor after the last batch printed to this file.")
    var cursorOut: String?

    @Option(help: "With --socket: the job to join (Hello.job_id; default: the job of clients that name none). Its ranks' cursors are kept in the daemon's <state-dir>/jobs/<job>/.")
    var job: String?

    @Option(help: "Folder holding the dataset folders.")
    var dataRoot: String?

    @Option(help: "With --offline: first step to print.")
    var step: UInt64 = 0

    @Option(help: "Global rank.")
    var rank: Int = 0

    @Option(help: "Number of ranks.")
    var worldSize: Int = 1

    @Option(help: "Sequences per rank per step.")
    var batchSize: Int = 1

    @Option(help: "Number of steps to print.")
    var count: Int = 1

    @Flag(help: "One JSON object per line, one per sequence.")
    var json = false

    @Option(help: ArgumentHelp("With --offline: keep bestfit packing's per-shard row counts and --order nanotron's blend counts in this folder, so that a far --step (bestfit) or opening the stream (nanotron) is cheap after the first time.",
                               valueName: "dir"))
    var cacheDir: String?

    func validate() throws {
        guard worldSize > 0, batchSize > 0, count >= 0 else { throw ValidationError("--world-size, --batch-size must be positive, --count not negative") }
        guard rank >= 0, rank < worldSize else { throw ValidationError("--rank must be within 0..<\(worldSize)") }
        guard (offline == nil) != (socket == nil) else { throw ValidationError("give exactly one of --offline CURRICULUM and --socket PATH") }
        if offline != nil, cursorIn != nil || cursorOut != nil { throw ValidationError("--cursor-in and --cursor-out work with --socket") }
        if offline != nil, job != nil { throw ValidationError("--job works with --socket") }
        if let job, job.utf8.count > Hello.maxJobIDBytes { throw ValidationError("--job: at most \(Hello.maxJobIDBytes) bytes of UTF-8") }
        if socket != nil, cacheDir != nil { throw ValidationError("--cache-dir works with --offline") }
        if socket != nil, step != 0 { throw ValidationError("with --socket the stream starts at step 0 or at --cursor-in; --step is for --offline") }
        if socket != nil, order != .quota { throw ValidationError("--order is for --offline; with --socket the daemon's order is served (tokenfeedd --order)") }
    }

    @Option(help: "With --offline: shard files kept open at most (least recently used closed first).")
    var maxOpenShards: Int = 256

    @Option(help: "With --offline: the order sequences are drawn in, quota (the default) or nanotron (nanotron's samples; with gradient accumulation give --world-size dp and --batch-size micro_batch_size, one step per micro-batch).")
    var order: StreamOrder = .quota

    func run() throws {
        DescriptorCache.shared.setCapacity(max(1, maxOpenShards))
        if let socket {
            try SocketDump(socketPath: socket, rank: rank, worldSize: worldSize, batchSize: batchSize, count: count,
                           json: json, cursorIn: cursorIn, cursorOut: cursorOut, jobID: job ?? "").run()
            return
        }
        guard let offline else { return }
        var curriculum: Curriculum
        do {
            curriculum = try CurriculumLoader.load(path: offline, dataRoot: dataRoot)
            curriculum.order = order
        } catch {
            printError(error.description)
            throw ExitCode(1)
        }
        let stream: GlobalStream
        do {
            stream = try GlobalStream(curriculum: curriculum, bestFitCacheDirectory: cacheDir,
                                      bestFitCacheReport: { printError("tokenfeed dump: \($0)") },
                                      nanotronBlendCache: cacheDir.map { NanotronBlendStore(directory: $0, report: { printError("tokenfeed dump: \($0)") }) })
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        let slice = RankSlice(rank: rank, worldSize: worldSize, batchSize: batchSize)
        var assembler = BatchAssembler(stream: stream, slice: slice)
        let frames = DirectFrameProvider(stream: stream)
        let tokens = UnsafeMutableRawBufferPointer.allocate(byteCount: assembler.tokenBlockBytes, alignment: 64)
        defer { tokens.deallocate() }
        let stepsInRun = stream.plan.totalSequences / UInt64(slice.globalBatch)
        // Progress only when the records go to a file or pipe and stderr is a terminal.
        let done = DoneCounter()
        let progressLine = isatty(1) == 1 ? nil
            : ProgressLine.start(label: "dump", total: UInt64(count), unit: "steps") { (done.value, nil) }
        defer { progressLine?.stop() }
        for s in step ..< step + UInt64(count) {
            defer { done.increment() }
            guard s < stepsInRun else {
                printError("step \(s) is past the end of the curriculum (\(stepsInRun) steps of \(slice.globalBatch) sequences)")
                throw ExitCode(1)
            }
            do { try assembler.assemble(step: s, into: tokens, frames: frames) } catch {
                printError("error: \(error)")
                throw ExitCode(1)
            }
            for (j, record) in assembler.records.enumerated() {
                let row = readRow(tokens, row: j, rowTokens: stream.rowTokens, width: stream.tokenWidth)
                let dumpRecord = DumpRecord(
                    step: s, rank: rank, sequence: record.sequence,
                    stage: curriculum.stages[Int(record.stage)].name,
                    dataset: curriculum.datasets[Int(record.dataset)].name, epoch: record.epoch,
                    tokens: row, paddedTokens: Int(record.paddedTokens),
                    provenance: assembler.pieces[Int(record.firstPiece) ..< Int(record.firstPiece + record.pieceCount)].map {
                        .init(shard: stream.shardName(dataset: Int(record.dataset), shard: Int($0.shard)),
                              document: $0.document, offset: $0.offset, length: $0.length)
                    })
                print(json ? dumpRecord.json() : dumpRecord.text())
            }
        }
    }
}

/// Row `row` of a token block as 32-bit ids.
func readRow(_ tokens: UnsafeRawBufferPointer, row: Int, rowTokens: Int, width: TokenWidth) -> [UInt32] {
    (0 ..< rowTokens).map { i in
        let at = (row * rowTokens + i) * width.bytes
        return width == .uint16
            ? UInt32(tokens.loadLE(at, as: UInt16.self))
            : tokens.loadLE(at, as: UInt32.self)
    }
}

func readRow(_ tokens: UnsafeMutableRawBufferPointer, row: Int, rowTokens: Int, width: TokenWidth) -> [UInt32] {
    readRow(UnsafeRawBufferPointer(tokens), row: row, rowTokens: rowTokens, width: width)
}
