import Foundation
import Testing
import TestSupport
@testable import TokenfeedShards

/// Shard metadata with a valid CRC but absurd fields: every case is a `ShardError` naming the file
/// and the field (and the frame for frame-table entries) — at open, in `shard verify` — never a trap.
@Suite struct ShardMetadataFieldTests {
    let dir = TemporaryDirectory()
    let image: ShardImage
    let metadata: ShardMetadata

    init() throws {
        let path = dir.sub("good.zst")
        let docs = SyntheticCorpus.documents(seed: 5, count: 30, vocabulary: 50_000, meanLength: 60)
        metadata = try SyntheticCorpus.writeShard(docs, path: path, width: .uint16, vocabulary: 50_000, tokensPerFrame: 400)
        image = try ShardImage(path: path)
    }

    /// Byte offset of the frame table's entry `k` in the payload.
    func entry(_ k: Int) -> Int { ShardFormat.metadataFixedSize + k * ShardFormat.frameEntrySize }
    /// Byte offset of the document-length section's size field.
    var lengthsField: Int { entry(metadata.frames.count) }

    /// Writes the shard with `change` applied to its metadata payload (CRC recomputed) and checks
    /// that opening it and verifying it both fail naming `field` (and `frame`).
    func expectRejected(_ name: String, field: String, frame: Int? = nil, _ change: (inout [UInt8]) -> Void) throws {
        var payload = image.payload
        change(&payload)
        let path = dir.sub(name + ".zst")
        try Data(image.file(payload: ShardImage.recomputingCRC(payload))).write(to: URL(fileURLWithPath: path))
        do {
            _ = try ShardReader(path: path)
            Issue.record("\(name): opened")
        } catch {
            #expect(error.path == path, "\(name)")
            #expect(error.field == field, "\(name): \(error)")
            #expect(error.frame == frame, "\(name): \(error)")
            #expect(error.description.contains(field), "\(name): \(error)")
        }
        let problems = ShardVerifier.verify(path: path)
        #expect(problems.count == 1 && problems[0].field == field, "\(name): \(problems)")
    }

    @Test func theUnchangedImageDecodes() throws {
        #expect(try image.decode(image.payload) == metadata)
    }

    @Test func aTokenCountOf2To64Minus1() throws {
        try expectRejected("tokens-max", field: "token_count") { $0.put(UInt64.max, at: MetadataField.tokenCount.rawValue, size: 8) }
        try expectRejected("tokens-plus-one", field: "token_count") {
            $0.put(metadata.tokenCount + UInt64(metadata.tokensPerFrame), at: MetadataField.tokenCount.rawValue, size: 8)
        }
    }

    /// The command-line tools on such a file: exit 1 with the file and field named, no trap.
    @Test func verifyAndInspectNameTheFieldAndExit1() throws {
        try expectRejected("cli", field: "token_count") { $0.put(UInt64.max, at: MetadataField.tokenCount.rawValue, size: 8) }
        let path = dir.sub("cli.zst")
        for command in [["shard", "verify", path], ["shard", "inspect", path]] {
            let result = try run(productsFolder + "/tokenfeed", command)
            let output = result.stderr + String(decoding: result.stdout, as: UTF8.self)
            #expect(result.status == 1, "\(command): \(output)")
            #expect(output.contains(path) && output.contains("token_count"), "\(command): \(output)")
        }
    }

    @Test func frameCountsBeyondTheFile() throws {
        try expectRejected("frames-max", field: "frame_count") { $0.put(UInt64(UInt32.max), at: MetadataField.frameCount.rawValue, size: 4) }
        try expectRejected("frames-plus-one", field: "token_count") {
            $0.put(UInt64(metadata.frames.count + 1), at: MetadataField.frameCount.rawValue, size: 4)
        }
    }

    @Test func tokensPerFrameOutOfRangeOrDisagreeingWithTheHeader() throws {
        try expectRejected("tpf-zero", field: "tokens_per_frame") { $0.put(0, at: MetadataField.tokensPerFrame.rawValue, size: 4) }
        try expectRejected("tpf-max", field: "tokens_per_frame") { $0.put(UInt64(UInt32.max), at: MetadataField.tokensPerFrame.rawValue, size: 4) }
        // Consistent with the token and frame counts, but not with the header.
        try expectRejected("tpf-header", field: "tokens_per_frame") {
            $0.put(UInt64(metadata.tokensPerFrame + 1), at: MetadataField.tokensPerFrame.rawValue, size: 4)
        }
    }

    @Test func frameOffsetsAndSizesBeyondTheFile() throws {
        try expectRejected("offset-max", field: "frame_table.offset", frame: 0) { $0.put(UInt64.max, at: entry(0), size: 8) }
        try expectRejected("offset-2", field: "frame_table.offset", frame: 2) { $0.put(1 << 40, at: entry(2), size: 8) }
        let last = metadata.frames.count - 1
        try expectRejected("size-max", field: "frame_table.compressed_size", frame: last) {
            $0.put(UInt64(UInt32.max), at: entry(last) + 8, size: 4)
        }
        try expectRejected("size-zero", field: "frame_table.compressed_size", frame: 1) { $0.put(0, at: entry(1) + 8, size: 4) }
        try expectRejected("size-short", field: "frame_table") { $0.put(UInt64(metadata.frames[last].compressedSize - 1), at: entry(last) + 8, size: 4) }
    }

    @Test func documentLengthsThatDoNotAddUp() throws {
        try expectRejected("docs-max", field: "document_count") { $0.put(UInt64.max, at: MetadataField.documentCount.rawValue, size: 8) }
        try expectRejected("docs-fewer", field: "document_lengths") {
            $0.put(UInt64(metadata.documentCount - 1), at: MetadataField.documentCount.rawValue, size: 8)
        }
        try expectRejected("length-section", field: "document_lengths_size") { $0.put(UInt64.max, at: lengthsField, size: 8) }
        // The first document's length changed: the lengths no longer add up to the token count.
        try expectRejected("length-huge", field: "document_lengths") { $0[lengthsField + 8] = 0x7F }
        try expectRejected("length-zero", field: "document_lengths") { $0[lengthsField + 8] = 0 }
    }

    @Test func aPayloadShorterThanItsFixedFields() throws {
        try expectRejected("short", field: "payload_size") { $0.removeLast($0.count - 20) }
    }
}
