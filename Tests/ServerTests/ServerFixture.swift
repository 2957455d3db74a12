import Foundation
import Logging
import TestSupport
import TokenfeedClient
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedProtocol
import TokenfeedServer
import TokenfeedShards

/// A small data root and curriculum for serving tests: real text (the llama3-text fixture cut into
/// shards of whole documents, small frames) and a tiny synthetic uint16 dataset that wraps into many
/// epochs; three stages switching at tokens 640 (sequence 10) and 2000 (sequence 32, as 2000/64 = 31.25).
final class ServerFixture: @unchecked Sendable {
    let dir = TemporaryDirectory("tfsrv")
    var dataRoot: String { dir.sub("data") }
    var curriculumPath: String { dir.sub("curriculum.yaml") }
    var socketPath: String { dir.sub("s.sock") }
    let sequenceLength = 64
    let curriculum: Curriculum
    let stream: GlobalStream

    init(end: String = "200K") throws {
        try SyntheticCorpus.writeTestDataRoot(dir.sub("data"))      // web, code, tiny
        let yaml = """
        sequence_length: \(sequenceLength)
        seed: 11
        stages:
          - name: warmup
            start: 0
            end: 640
            mixture: {web: 0.7, code: 0.3}
          - name: middle
            start: 640
            end: 2000
            mixture: {web: 0.5, code: 0.25, tiny: 0.25}
          - name: last
            start: 2000
            end: \(end)
            mixture: {web: 3, code: 1, tiny: 1}

        """
        try yaml.write(toFile: dir.sub("curriculum.yaml"), atomically: true, encoding: .utf8)
        curriculum = try CurriculumLoader.load(path: dir.sub("curriculum.yaml"), dataRoot: dir.sub("data"))
        stream = try GlobalStream(curriculum: curriculum)
    }

    /// Options for a daemon on this fixture.
    func options(socket: String? = nil) -> ServerOptions {
        ServerOptions(curriculumPath: curriculumPath, dataRoot: dataRoot, socketPath: socket ?? socketPath,
                      preloadBytes: 1 << 20, ringSlots: 4, logLevel: .warning)
    }

    /// An in-process daemon listening on a real Unix socket in the fixture's folder.
    func startServer(_ options: ServerOptions? = nil) throws -> Server {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = try Server.open(options: options ?? self.options(), logger: logger)
        try server.start()
        return server
    }

    /// The offline reference: the batch of `slice` at `step`, assembled from the shard files.
    func reference(step: UInt64, slice: RankSlice) throws -> (tokens: [[UInt32]], records: [SequenceRecord], pieces: [SequencePiece]) {
        try reference(step: step, slice: slice, stream: stream)
    }

    /// The batch of `slice` at `step` of `stream` (this fixture's or another over its files), assembled from the shard files.
    func reference(step: UInt64, slice: RankSlice, stream: GlobalStream) throws -> (tokens: [[UInt32]], records: [SequenceRecord], pieces: [SequencePiece]) {
        var assembler = BatchAssembler(stream: stream, slice: slice)
        let frames = DirectFrameProvider(stream: stream)
        let block = UnsafeMutableRawBufferPointer.allocate(byteCount: assembler.tokenBlockBytes, alignment: 64)
        defer { block.deallocate() }
        try assembler.assemble(step: step, into: block, frames: frames)
        let width = stream.tokenWidth.bytes
        let rows = (0 ..< slice.batchSize).map { r in
            (0 ..< stream.rowTokens).map { t -> UInt32 in
                let at = (r * stream.rowTokens + t) * width
                return width == 4 ? UInt32(littleEndian: block.loadUnaligned(fromByteOffset: at, as: UInt32.self))
                                  : UInt32(UInt16(littleEndian: block.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
            }
        }
        return (rows, assembler.records, assembler.pieces)
    }

}

/// One received row, copied out of the receive buffer for comparisons.
struct ReceivedRow: Hashable {
    var step: UInt64
    var sequence: UInt64
    var dataset: UInt32
    var stage: UInt32
    var epoch: UInt32
    var tokens: [UInt32]
    var pieces: [Piece]
}

extension ClientBatch {
    /// The batch's rows, copied.
    var rows: [ReceivedRow] {
        (0 ..< batchSize).map { j in
            let r = row(j)
            return ReceivedRow(step: step, sequence: r.sequenceIndex, dataset: r.datasetIndex, stage: r.stageIndex, epoch: r.epoch,
                               tokens: (0 ... sequenceLength).map { token(row: j, position: $0) }, pieces: pieces(row: j))
        }
    }
}

extension TokenfeedClient {
    /// The rows of the next `count` batches.
    func rows(batches count: Int) throws -> [ReceivedRow] {
        var out: [ReceivedRow] = []
        for _ in 0 ..< count {
            guard let batch = try next() else { break }
            out += batch.rows
        }
        return out
    }
}

/// Waits (bounded) until `condition` holds, polling; returns whether it did.
func eventually(within seconds: Double = 3, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(2_000)
    }
    return condition()
}
