import Foundation
import Testing
import TestSupport
import TokenfeedMixing
@testable import TokenfeedShards

/// Every kind of damage is reported with the file and, for data, the frame.
@Suite struct ShardCorruptionTests {
    let dir = TemporaryDirectory()
    let path: String
    let metadata: ShardMetadata
    let original: [UInt8]

    init() throws {
        path = dir.sub("good.zst")
        let docs = SyntheticCorpus.documents(seed: 11, count: 60, vocabulary: 128_256, meanLength: 100)
        metadata = try SyntheticCorpus.writeShard(docs, path: path, vocabulary: 128_256, tokensPerFrame: 700)
        original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    func damaged(_ name: String, _ change: (inout [UInt8]) -> Void) throws -> String {
        var bytes = original
        change(&bytes)
        let p = dir.sub(name)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    @Test func aFlippedByteInAnyDataFrameNamesThatFrame() throws {
        #expect(metadata.frameCount >= 5)
        var rng = SplitMix64(seed: 3)
        for (k, frame) in try ShardReader(path: path).allFrames().enumerated() {
            let at = Int(frame.offset) + Int.random(in: 0 ..< Int(frame.compressedSize), using: &rng)
            let p = try damaged("flip\(k).zst") { $0[at] ^= 1 << UInt8.random(in: 0 ..< 8, using: &rng) }
            let problems = ShardVerifier.verify(path: p)
            #expect(problems.count == 1, "frame \(k): \(problems)")
            #expect(problems.first?.frame == k)
            #expect(problems.first?.path == p)
            #expect(problems.first?.problem.contains("checksum") == true)
            // Opening still works (metadata intact); reading the frame fails with the frame named.
            let reader = try ShardReader(path: p)
            #expect(throws: ShardError(path: p, frame: k, problems[0].problem)) {
                _ = try reader.tokens(metadata.tokenRange(ofFrame: k))
            }
        }
    }

    @Test func aFlippedByteInTheMetadataIsCaughtAtOpen() throws {
        let metaStart = Int(original[(original.count - 16) ..< (original.count - 8)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        let footerStart = original.count - ShardFormat.footerFrameSize
        for at in stride(from: metaStart, to: footerStart, by: max(1, (footerStart - metaStart) / 40)) {
            let p = try damaged("meta\(at).zst") { $0[at] ^= 0x10 }
            #expect(throws: ShardError.self, "byte \(at)") { try ShardReader(path: p) }
            let problems = ShardVerifier.verify(path: p)
            #expect(problems.count == 1 && problems[0].path == p, "byte \(at): \(problems)")
        }
        let p = try damaged("metacrc.zst") { $0[metaStart + 30] ^= 0x01 }
        #expect(ShardVerifier.verify(path: p).first?.description.contains("metadata") == true)
    }

    @Test func truncationAtAnyPointIsReported() throws {
        for cut in [0, 5, 24, 100, original.count / 2, original.count - 40, original.count - 32, original.count - 1] {
            let p = try damaged("cut\(cut).zst") { $0.removeLast($0.count - cut) }
            let problems = ShardVerifier.verify(path: p)
            #expect(problems.count == 1, "cut at \(cut)")
            #expect(problems.first?.path == p)
        }
    }

    @Test func wrongMagicOrVersionIsNamed() throws {
        let magic = try damaged("magic.zst") { $0[0] ^= 0xFF }
        #expect(ShardVerifier.verify(path: magic).first?.problem.contains("magic") == true)
        let tag = try damaged("tag.zst") { $0[9] = UInt8(ascii: "X") }
        #expect(ShardVerifier.verify(path: tag).first?.problem.contains("not a tokenfeed shard") == true)
        let version = try damaged("version.zst") { $0[16] = 9 }
        #expect(ShardVerifier.verify(path: version).first?.problem.contains("version 9 is not supported") == true)
    }
}
