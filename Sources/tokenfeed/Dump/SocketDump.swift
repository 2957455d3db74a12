import ArgumentParser
import Foundation
import TokenfeedClient
import TokenfeedProtocol

/// `tokenfeed dump --socket`: receives batches from a daemon as one rank and prints them as the
/// offline dump does (the same `DumpRecord` lines).
struct SocketDump {
    var socketPath: String
    var rank: Int
    var worldSize: Int
    var batchSize: Int
    var count: Int
    var json: Bool
    var cursorIn: String?
    var cursorOut: String?
    /// The job to join (Hello.job_id).
    var jobID: String = ""

    func run() throws {
        var resume: Cursor?
        if let cursorIn {
            let text: String
            do { text = try String(contentsOfFile: cursorIn, encoding: .utf8) } catch {
                printError("\(cursorIn): cannot read the cursor file: \(error.localizedDescription)")
                throw ExitCode(1)
            }
            do { resume = try Cursor(text: text) } catch {
                printError("\(cursorIn): \(error)")
                throw ExitCode(1)
            }
        }
        let client: TokenfeedClient
        do {
            client = try TokenfeedClient.connect(socketPath: socketPath, rank: UInt32(rank), worldSize: UInt32(worldSize),
                                                 batchSize: UInt32(batchSize), cursor: resume,
                                                 credits: UInt32(max(1, min(count, 8))), jobID: jobID)
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        defer { client.close() }
        var printed = 0
        while printed < count {
            let batch: ClientBatch?
            do { batch = try client.next() } catch {
                printError("error: \(error)")
                try writeCursor(client.cursor)
                throw ExitCode(1)
            }
            guard let batch else {
                printError("the stream ended after step \(client.cursor.nextStep - 1) (\(printed) of \(count) batches printed)")
                break
            }
            for j in 0 ..< batch.batchSize {
                print(Self.record(batch, row: j).line(json: json))
            }
            printed += 1
        }
        try writeCursor(client.cursor)
    }

    private func writeCursor(_ cursor: Cursor) throws {
        guard let cursorOut else { return }
        do { try (cursor.text + "\n").write(toFile: cursorOut, atomically: true, encoding: .utf8) } catch {
            printError("\(cursorOut): cannot write the cursor: \(error.localizedDescription)")
            throw ExitCode(1)
        }
    }

    /// Row `j` of a received batch as the dump prints it (padding pieces are not provenance).
    static func record(_ batch: ClientBatch, row j: Int) -> DumpRecord {
        let row = batch.row(j)
        let tokens = (0 ... batch.sequenceLength).map { batch.token(row: j, position: $0) }
        let provenance = batch.pieces(row: j).filter { !$0.isPadding }.map {
            DumpRecord.Piece(shard: batch.shardPath(row: j, piece: $0), document: $0.documentIndex, offset: $0.tokenOffset, length: $0.length)
        }
        return DumpRecord(step: batch.step, rank: Int(batch.rank), sequence: row.sequenceIndex, stage: batch.stageName(row: j),
                          dataset: batch.datasetName(row: j), epoch: row.epoch, tokens: tokens,
                          paddedTokens: Int(row.paddedTokens), provenance: provenance)
    }
}

extension DumpRecord {
    /// The JSON line or the text lines.
    func line(json: Bool) -> String { json ? self.json() : text() }
}
