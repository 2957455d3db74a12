import Foundation
import Testing
import TestSupport
import TokenfeedMixing
@testable import TokenfeedShards

/// Hostile shard metadata: structure-aware mutations of real shards' metadata payloads, with the
/// CRC-32 recomputed after each so the decoder behind it is exercised (a bit flip alone is stopped
/// by the CRC). Seeded and bounded. The decoder must never trap; it either rejects the payload with a
/// `ShardError` naming a field, or accepts metadata that is consistent with itself and the file.
@Suite struct ShardMetadataFuzzTests {
    /// Real shards: the corpus fixture's first part in 2 shards (uint32, 4,096-token frames) and
    /// synthetic uint16 shards with small frames (many frame-table entries, one-byte lengths).
    static let corpus: [ShardImage] = {
        let dir = TemporaryDirectory()
        var paths: [String] = []
        do {
            try SyntheticCorpus.splitFixturePart("part_00000", into: 2, folder: dir.path, tokensPerFrame: 4096)
            paths += [dir.sub("part-0.zst"), dir.sub("part-1.zst")]
            for (i, tpf) in [7, 64, 1000].enumerated() {
                let p = dir.sub("synthetic-\(i).zst")
                let docs = SyntheticCorpus.documents(seed: UInt64(40 + i), count: 20 + 10 * i, vocabulary: 30_000, meanLength: 25 + 100 * i)
                try SyntheticCorpus.writeShard(docs, path: p, width: .uint16, vocabulary: 30_000, tokensPerFrame: tpf)
                paths.append(p)
            }
            return try paths.map { try ShardImage(path: $0) }
        } catch {
            fatalError("cannot write the seed corpus: \(error)")
        }
    }()

    /// Values that find edge cases in a `size`-byte field.
    static func interesting(size: Int, current: UInt64, dataEnd: UInt64, using rng: inout SplitMix64) -> UInt64 {
        let max = size == 8 ? UInt64.max : (UInt64(1) << UInt64(8 * size)) - 1
        let candidates: [UInt64] = [0, 1, 2, max, max - 1, max / 2, max / 2 + 1, current &+ 1, current &- 1, current &* 2,
                                    current / 2, dataEnd, dataEnd &+ 1, dataEnd &- 1, 1 << 28, (1 << 28) + 1,
                                    UInt64.random(in: 0 ... max, using: &rng)]
        return candidates.randomElement(using: &rng)! & max
    }

    /// One structure-aware mutation of `payload` (CRC not yet recomputed).
    static func mutate(_ payload: inout [UInt8], image: ShardImage, using rng: inout SplitMix64) {
        let body = payload.count - 4                      // CRC-32 at the end
        let frames = Int(payload.get(at: MetadataField.frameCount.rawValue, size: 4))
        let lengthsAt = ShardFormat.metadataFixedSize + frames * ShardFormat.frameEntrySize
        switch Int.random(in: 0 ..< 7, using: &rng) {
        case 0:                                           // a fixed field
            let field = MetadataField.allCases.randomElement(using: &rng)!
            guard field.rawValue + field.size <= body else { return }
            let value = interesting(size: field.size, current: payload.get(at: field.rawValue, size: field.size), dataEnd: image.dataEnd, using: &rng)
            payload.put(value, at: field.rawValue, size: field.size)
        case 1:                                           // a frame-table entry's offset or size
            guard frames > 0, lengthsAt <= body else { return }
            let at = ShardFormat.metadataFixedSize + Int.random(in: 0 ..< frames, using: &rng) * ShardFormat.frameEntrySize
            let (offset, size) = Bool.random(using: &rng) ? (at, 8) : (at + 8, 4)
            payload.put(interesting(size: size, current: payload.get(at: offset, size: size), dataEnd: image.dataEnd, using: &rng), at: offset, size: size)
        case 2:                                           // the document-length section's size
            guard lengthsAt + 8 <= body else { return }
            payload.put(interesting(size: 8, current: payload.get(at: lengthsAt, size: 8), dataEnd: image.dataEnd, using: &rng), at: lengthsAt, size: 8)
        case 3:                                           // bytes of the document lengths
            guard lengthsAt + 8 < body else { return }
            for _ in 0 ..< Int.random(in: 1 ... 3, using: &rng) {
                let at = Int.random(in: (lengthsAt + 8) ..< body, using: &rng)
                payload[at] = [0, 0x7F, 0x80, 0xFF, UInt8.random(in: 0 ... 255, using: &rng)].randomElement(using: &rng)!
            }
        case 4:                                           // insert or remove length bytes (sizes kept or not)
            guard lengthsAt + 8 <= body else { return }
            let at = Int.random(in: (lengthsAt + 8) ... body, using: &rng)
            if Bool.random(using: &rng) || at == body {
                payload.insert(contentsOf: [UInt8](repeating: [0x01, 0x80, 0xFF].randomElement(using: &rng)!, count: Int.random(in: 1 ... 11, using: &rng)), at: at)
            } else {
                payload.remove(at: at)
            }
            if Bool.random(using: &rng) {             // keep the section's size field consistent
                payload.put(UInt64(payload.count - 4 - lengthsAt - 8), at: lengthsAt, size: 8)
            }
        case 5:                                           // truncate or extend the payload
            if Bool.random(using: &rng) {
                payload.removeLast(Int.random(in: 0 ... min(payload.count, 64), using: &rng))
            } else {
                payload.append(contentsOf: (0 ..< Int.random(in: 1 ... 64, using: &rng)).map { _ in UInt8.random(in: 0 ... 255, using: &rng) })
            }
        default:                                          // a consistent-looking change: counts moved together
            guard ShardFormat.metadataFixedSize <= body else { return }
            let tokens = interesting(size: 8, current: payload.get(at: MetadataField.tokenCount.rawValue, size: 8), dataEnd: image.dataEnd, using: &rng)
            payload.put(tokens, at: MetadataField.tokenCount.rawValue, size: 8)
            let t = max(1, payload.get(at: MetadataField.tokensPerFrame.rawValue, size: 4))
            payload.put(tokens / t + (tokens % t == 0 ? 0 : 1), at: MetadataField.frameCount.rawValue, size: 4)
        }
    }

    /// Decodes `payload`: a rejection must name a field; an acceptance must be self-consistent.
    static func check(_ payload: [UInt8], image: ShardImage, case n: Int) {
        do {
            let m = try image.decode(payload)
            var offset = UInt64(ShardFormat.headerFrameSize)
            for f in m.frames {
                #expect(f.offset == offset && f.compressedSize > 0, "case \(n)")
                offset += UInt64(f.compressedSize)
            }
            #expect(offset == image.dataEnd, "case \(n)")
            #expect((m.documentEnds.last ?? 0) == m.tokenCount, "case \(n)")
            #expect(m.tokensPerFrame >= 1 && m.tokensPerFrame <= ShardFormat.maxTokensPerFrame, "case \(n)")
        } catch {
            #expect(error.field != nil, "case \(n): a rejection without a field: \(error)")
            #expect(error.path == "mem.zst")
        }
    }

    @Test func seedCorpusDecodes() throws {
        for image in Self.corpus { _ = try image.decode(image.payload) }
    }

    @Test func mutationsBehindARecomputedCRCNeverTrapAndNameTheField() {
        var rng = SplitMix64(seed: 8)
        var rejected = 0
        for n in 0 ..< 20_000 {
            let image = Self.corpus.randomElement(using: &rng)!
            var payload = image.payload
            for _ in 0 ..< Int.random(in: 1 ... 3, using: &rng) { Self.mutate(&payload, image: image, using: &rng) }
            payload = ShardImage.recomputingCRC(payload)
            Self.check(payload, image: image, case: n)
            if (try? image.decode(payload)) == nil { rejected += 1 }
        }
        // The mutations reach the decoder's checks (they are not all stopped by the CRC).
        #expect(rejected > 15_000)
    }

    @Test func everyTruncationOfTheLengthsAndTableIsRejectedByField() {
        for image in Self.corpus.suffix(3) {
            for cut in stride(from: 0, to: image.payload.count, by: 1) {
                let payload = ShardImage.recomputingCRC(Array(image.payload.prefix(cut)) + [0, 0, 0, 0])
                Self.check(payload, image: image, case: cut)
            }
        }
    }

    /// The same mutations through the whole file path (`ShardReader`, `ShardVerifier`), fewer cases.
    @Test func mutatedFilesAreReportedByVerify() throws {
        let dir = TemporaryDirectory()
        var rng = SplitMix64(seed: 9)
        for n in 0 ..< 300 {
            let image = Self.corpus.randomElement(using: &rng)!
            var payload = image.payload
            Self.mutate(&payload, image: image, using: &rng)
            let path = dir.sub("case-\(n).zst")
            try Data(image.file(payload: ShardImage.recomputingCRC(payload))).write(to: URL(fileURLWithPath: path))
            for problem in ShardVerifier.verify(path: path) {
                #expect(problem.path == path)
                #expect(problem.field != nil || problem.frame != nil, "case \(n): \(problem)")
            }
        }
    }
}
