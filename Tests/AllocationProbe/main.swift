// A test tool, not part of tokenfeed: counts the daemon's heap allocations per batch in steady state
// (docs/DEVELOPING.md, "Rules"). It builds a corpus of many datasets, starts the real server in this
// process on a real Unix socket, reads batches with a client that allocates nothing, and counts every
// malloc of the process (all threads: packer, preloader, decompression, connection writer and
// reader) over `--batches` batches after `--warmup` batches, in two scenarios:
//
// - `cached`: the preload budget holds every frame and the warm-up has touched them all, so what runs
//   is the packer → ring → socket path (and the preloader's planning, with frame-cache hits only);
// - `streamed`: a preload budget of 32 frames (96 KiB), so frames are decompressed all the time:
//   the preloader and frame-loading path;
// - `lockstep`: as `cached`, with one batch of credit: the client returns a Credit for every batch and
//   the connection's writer waits for it each time (a trainer slower than the daemon), so the credit
//   path (reading and decoding Credit frames, waking the writer) runs once per batch.
//
// It needs ordo-one's malloc interposer preloaded (`LD_PRELOAD=…/libMallocInterposerSwift.so` on
// Linux); without it the counts stay 0 and the JSON says `"interposer": false`. ServerTests'
// AllocationTests runs it and asserts fewer than one allocation per batch in both scenarios.
//
// Usage: AllocationProbe [--self-check] [--batches N] [--warmup N] [--datasets N] [--trace]
// (`--trace`: the most frequent call stacks of the allocations counted, on standard error.)
// Prints one JSON object on standard output.
import Foundation
import Logging
import MallocInterposerSwift
import TokenfeedServer

/// One scenario's counts over the measured batches.
struct ScenarioResult {
    var name: String
    var batches: Int
    var mallocs: Int
    var mallocBytes: Int
    var frees: Int
    var framesDecompressed: Int
    var cacheSlots: Int
    var json: String {
        let perBatch = Double(mallocs) / Double(max(1, batches))
        return "{\"name\": \"\(name)\", \"batches\": \(batches), \"mallocs\": \(mallocs), \"mallocBytes\": \(mallocBytes), "
            + "\"frees\": \(frees), \"framesDecompressed\": \(framesDecompressed), \"cacheSlots\": \(cacheSlots), \"mallocsPerBatch\": \(perBatch)}"
    }
}

/// Whether allocations are being counted: one allocation made while hooked must show.
func interposerIsActive() -> Bool {
    MallocInterposerSwift.initialize()
    MallocInterposerSwift.hook()
    let probe = UnsafeMutableRawPointer.allocate(byteCount: 24, alignment: 8)
    probe.storeBytes(of: 1, as: Int.self)
    probe.deallocate()
    MallocInterposerSwift.unhook()
    return MallocInterposerSwift.getStatistics().mallocCount > 0
}

func run(scenario name: String, corpus: ProbeCorpus, preloadBytes: Int, credits: UInt32, warmup: Int, batches: Int) throws -> ScenarioResult {
    let socketPath = corpus.folder.sub("\(name).sock")
    var options = ServerOptions(curriculumPath: corpus.curriculumPath, dataRoot: corpus.dataRoot, socketPath: socketPath,
                                preloadBytes: preloadBytes, ringSlots: 4, logLevel: .critical)
    options.socketMode = 0o600
    var logger = Logger(label: "allocation-probe")
    logger.logLevel = .critical
    let server = try Server.open(options: options, logger: logger)
    try server.start()
    defer { server.shutdown() }
    let reader = try RawBatchReader(socketPath: socketPath, batchSize: 8, credits: credits)
    for _ in 0 ..< warmup { try reader.readBatch() }
    let framesBefore = server.frameCache.framesDecompressed.load(ordering: .relaxed)
    if tracing { AllocationTrace.install() }
    MallocInterposerSwift.reset()
    MallocInterposerSwift.hook()
    for _ in 0 ..< batches { try reader.readBatch() }
    MallocInterposerSwift.unhook()
    let statistics = MallocInterposerSwift.getStatistics()
    if tracing { AllocationTrace.report() }
    let frames = server.frameCache.framesDecompressed.load(ordering: .relaxed) - framesBefore
    try reader.finish()
    return ScenarioResult(name: name, batches: batches, mallocs: statistics.mallocCount, mallocBytes: statistics.mallocBytesCount,
                          frees: statistics.freeCount, framesDecompressed: frames, cacheSlots: server.frameCache.slotCount)
}

func argument(_ name: String, default value: Int) -> Int {
    let arguments = CommandLine.arguments
    guard let at = arguments.firstIndex(of: name), at + 1 < arguments.count, let parsed = Int(arguments[at + 1]) else { return value }
    return parsed
}

let active = interposerIsActive()
let tracing = CommandLine.arguments.contains("--trace")
if CommandLine.arguments.contains("--self-check") {
    print("{\"interposer\": \(active)}")
    exit(0)
}
do {
    let corpus = try ProbeCorpus(datasetCount: argument("--datasets", default: 12))
    let warmup = argument("--warmup", default: 1_000), batches = argument("--batches", default: 2_000)
    // Every frame fits 64 MiB; 96 KiB holds 32 slots (a 2 KiB frame and its compressed bytes each).
    let results = [
        try run(scenario: "cached", corpus: corpus, preloadBytes: 64 << 20, credits: 8, warmup: warmup, batches: batches),
        try run(scenario: "streamed", corpus: corpus, preloadBytes: 96 << 10, credits: 8, warmup: warmup, batches: batches),
        try run(scenario: "lockstep", corpus: corpus, preloadBytes: 64 << 20, credits: 1, warmup: warmup, batches: batches),
    ]
    print("{\"interposer\": \(active), \"datasets\": \(corpus.datasetCount), \"warmup\": \(warmup), \"scenarios\": [\(results.map(\.json).joined(separator: ", "))]}")
} catch {
    FileHandle.standardError.write(Data("AllocationProbe: \(error)\n".utf8))
    exit(1)
}
