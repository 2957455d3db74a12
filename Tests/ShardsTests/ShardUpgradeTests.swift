import Foundation
import Testing
import TestSupport
@testable import TokenfeedShards

/// Version 1 and 2 shards: refused with the command to run; `tokenfeed shard upgrade` rewrites them
/// as the very bytes a version 3 writer produces (data frames copied, not recompressed).
@Suite struct ShardUpgradeTests {
    let dir = TemporaryDirectory()

    /// Writes a version 1 or 2 copy of the version 3 shard at `path` to `legacy`: same header but the
    /// version, same data frames, the old metadata frame (frame table and LEB128 lengths inline).
    static func writeLegacy(of path: String, to legacy: String, version: UInt16) throws {
        let reader = try ShardReader(path: path)
        let m = reader.metadata
        let old = LegacyShardMetadata(tokenWidth: m.tokenWidth, tokensPerFrame: m.tokensPerFrame, vocabularySize: m.vocabularySize,
                                      tokenCount: m.tokenCount, frames: try reader.allFrames(), documentEnds: try reader.allDocumentEnds(),
                                      tokenizer: version == 1 ? nil : m.tokenizer, formatVersion: version)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var data = Array(bytes[..<Int(m.indexOffset)])
        data[16] = UInt8(version)
        let payload = old.encodedPayload()
        try Data(ShardImage(data: data, payload: payload).file(payload: payload)).write(to: URL(fileURLWithPath: legacy))
    }

    func makeFolders() throws -> (fresh: String, legacy: String) {
        let fresh = dir.sub("fresh", create: true), legacy = dir.sub("legacy", create: true)
        for s in 0 ..< 3 {
            let docs = SyntheticCorpus.documents(seed: UInt64(70 + s), count: 700 + 300 * s, vocabulary: 5000, meanLength: 12)
            let writer = try ShardWriter(path: fresh + "/s\(s).zst", tokenWidth: .uint16, vocabularySize: 5000, tokensPerFrame: 500,
                                         tokenizer: s == 0 ? nil : "gpt2")
            for d in docs { try writer.write(tokens: d); try writer.endDocument() }
            try writer.finish()
            try Self.writeLegacy(of: fresh + "/s\(s).zst", to: legacy + "/s\(s).zst", version: s == 0 ? 1 : 2)
        }
        return (fresh, legacy)
    }

    @Test func anOldShardIsRefusedWithTheCommandToRun() throws {
        let (_, legacy) = try makeFolders()
        for s in 0 ..< 2 {
            let path = legacy + "/s\(s).zst"
            let error = #expect(throws: ShardError.self) { try ShardReader(path: path) }
            #expect(error?.path == path && error?.field == "version", "\(String(describing: error))")
            #expect(error?.problem.contains("format version \(s + 1) shard") == true)
            #expect(error?.problem.contains("tokenfeed shard upgrade \(legacy)") == true, "\(String(describing: error))")
        }
        #expect(throws: ShardError.self) { try DatasetFolder.open(path: legacy, report: { _ in }) }
        let inspect = try run(productsFolder + "/tokenfeed", ["shard", "inspect", legacy + "/s1.zst"])
        #expect(inspect.status == 1 && inspect.stderr.contains("tokenfeed shard upgrade"), "\(inspect.stderr)")
    }

    @Test func upgradeRewritesTheExactBytesOfAVersion3Writer() throws {
        let (fresh, legacy) = try makeFolders()
        let tokensBefore = try (0 ..< 3).map { try run("/usr/bin/zstd", ["-dc", legacy + "/s\($0).zst"]).stdout }
        let result = try run(productsFolder + "/tokenfeed", ["shard", "upgrade", legacy])
        let out = String(decoding: result.stdout, as: UTF8.self)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(out.contains("3 shards upgraded to version 3, 0 already version 3"), "\(out)")
        #expect(out.contains("tokenfeed.manifest (3 shards)"), "\(out)")
        for s in 0 ..< 3 {
            let upgraded = try Data(contentsOf: URL(fileURLWithPath: legacy + "/s\(s).zst"))
            // Version 1 had no tokenizer: its upgrade is the fresh shard's bytes but for a v1 unknown name.
            #expect(upgraded == (try Data(contentsOf: URL(fileURLWithPath: fresh + "/s\(s).zst"))), "shard \(s)")
            #expect(try run("/usr/bin/zstd", ["-dc", legacy + "/s\(s).zst"]).stdout == tokensBefore[s])
            #expect(ShardVerifier.verify(path: legacy + "/s\(s).zst").isEmpty)
        }
        #expect(FileManager.default.fileExists(atPath: legacy + "/" + DatasetManifest.fileName))
        // Upgrading again leaves the shards alone.
        let before = try Data(contentsOf: URL(fileURLWithPath: legacy + "/s1.zst"))
        let again = try run(productsFolder + "/tokenfeed", ["shard", "upgrade", legacy])
        #expect(String(decoding: again.stdout, as: UTF8.self).contains("0 shards upgraded to version 3, 3 already version 3"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: legacy + "/s1.zst")) == before)
    }
}
