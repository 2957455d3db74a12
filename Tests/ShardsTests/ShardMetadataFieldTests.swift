import Foundation
import Testing
import TestSupport
@testable import TokenfeedShards

/// Shard metadata with a valid CRC but absurd fields: every case is a `ShardError` naming the file
/// and the field — at open, in `shard verify` — never a trap. Index pages with absurd entries (behind
/// a valid page CRC) or a bad CRC: the shard opens (pages are read lazily), reading the page fails
/// naming the section and the page, and `shard verify` reports it.
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
            $0.put(UInt64(metadata.frameCount + 1), at: MetadataField.frameCount.rawValue, size: 4)
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

    /// Writes the shard with `change` applied to page `p` of `section` (its CRC-32 recomputed unless
    /// `keepCRC`), and checks that it opens (pages are read lazily), that reading the page fails
    /// naming the section as the field, the page and `words`, and that `shard verify` reports it.
    func expectPageRejected(_ name: String, _ section: IndexSection, page p: Int = 0, keepCRC: Bool = false,
                            words: String, _ change: (inout [UInt8]) -> Void) throws {
        let (offset, size, _, _) = metadata.indexLayout.page(section, p)
        var file = image.file(payload: image.payload)
        var page = Array(file[Int(offset) ..< Int(offset) + size])
        change(&page)
        if !keepCRC { page = ShardImage.recomputingCRC(page) }
        file.replaceSubrange(Int(offset) ..< Int(offset) + size, with: page)
        let path = dir.sub(name + ".zst")
        try Data(file).write(to: URL(fileURLWithPath: path))
        let reader = try ShardReader(path: path)
        do {
            _ = try reader.page(section, p)
            Issue.record("\(name): page read")
        } catch {
            #expect(error.path == path && error.field == section.field, "\(name): \(error)")
            #expect(error.problem.contains("\(section.field) page \(p)") && error.problem.contains(words), "\(name): \(error)")
        }
        let problems = ShardVerifier.verify(path: path)
        #expect(problems.contains { $0.field == section.field && $0.problem.contains(words) }, "\(name): \(problems)")
    }

    @Test func frameTablePagesOutOfPlaceOrCorrupt() throws {
        try expectPageRejected("page-crc", .frameTable, keepCRC: true, words: "checksum mismatch") { $0[3] ^= 0x40 }
        try expectPageRejected("offset-max", .frameTable, words: "frame 0") { $0.put(UInt64.max, at: 0, size: 8) }
        try expectPageRejected("offset-2", .frameTable, words: "frame 2") { $0.put(1 << 40, at: 2 * 16, size: 8) }
        let last = metadata.frameCount - 1
        try expectPageRejected("size-max", .frameTable, words: "frame \(last)") { $0.put(UInt64(UInt32.max), at: last * 16 + 8, size: 4) }
        try expectPageRejected("size-zero", .frameTable, words: "frame 1") { $0.put(0, at: 16 + 8, size: 4) }
        try expectPageRejected("size-short", .frameTable, words: "the last frame ends") {
            $0.put($0.get(at: last * 16 + 8, size: 4) - 1, at: last * 16 + 8, size: 4)
        }
    }

    @Test func documentEndPagesThatDoNotAddUp() throws {
        try expectPageRejected("ends-crc", .documentEnds, keepCRC: true, words: "checksum mismatch") { $0[9] ^= 1 }
        try expectPageRejected("ends-previous", .documentEnds, words: "previous end") { $0.put(5, at: 0, size: 8) }
        try expectPageRejected("ends-past", .documentEnds, words: "document 0 ends") { $0.put(metadata.tokenCount + 1, at: 8, size: 8) }
        try expectPageRejected("ends-equal", .documentEnds, words: "document 1 ends") { $0.put($0.get(at: 8, size: 8), at: 16, size: 8) }
        let n = metadata.documentCount
        try expectPageRejected("ends-last", .documentEnds, words: "the last document ends") { $0.put(metadata.tokenCount - 1, at: 8 * n, size: 8) }
    }

    @Test func documentAndFrameCountsThatDoNotMatchTheIndex() throws {
        try expectRejected("docs-max", field: "document_count") { $0.put(UInt64.max, at: MetadataField.documentCount.rawValue, size: 8) }
        try expectRejected("docs-fewer", field: "document_count") {
            $0.put(UInt64(metadata.documentCount - 1), at: MetadataField.documentCount.rawValue, size: 8)
        }
        try expectRejected("index-offset", field: "index_offset") { $0.put(UInt64.max, at: MetadataField.indexOffset.rawValue, size: 8) }
        try expectRejected("index-moved", field: "document_count") {
            $0.put(metadata.indexOffset - 1, at: MetadataField.indexOffset.rawValue, size: 8)
        }
        try expectRejected("largest-zero", field: "largest_frame") { $0.put(0, at: MetadataField.largestFrame.rawValue, size: 4) }
        try expectRejected("largest-max", field: "largest_frame") { $0.put(UInt64(UInt32.max), at: MetadataField.largestFrame.rawValue, size: 4) }
    }

    @Test func aPayloadShorterThanItsFixedFields() throws {
        try expectRejected("short", field: "payload_size") { $0.removeLast($0.count - 20) }
    }
}
