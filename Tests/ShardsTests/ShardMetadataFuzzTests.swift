import Foundation
import Testing
import TestSupport
import TokenfeedMixing
@testable import TokenfeedShards
import TokenfeedSystem

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
        let fieldsAt = ShardFormat.metadataFixedSize      // the tagged-field section's size
        switch Int.random(in: 0 ..< 5, using: &rng) {
        case 0, 1:                                        // a fixed field
            let field = MetadataField.allCases.randomElement(using: &rng)!
            guard field.rawValue + field.size <= body else { return }
            let value = interesting(size: field.size, current: payload.get(at: field.rawValue, size: field.size), dataEnd: image.dataEnd, using: &rng)
            payload.put(value, at: field.rawValue, size: field.size)
        case 2:                                           // the tagged-field section: its size or bytes
            guard fieldsAt + 8 <= body else { return }
            if Bool.random(using: &rng) {
                payload.put(interesting(size: 8, current: payload.get(at: fieldsAt, size: 8), dataEnd: image.dataEnd, using: &rng), at: fieldsAt, size: 8)
            } else {
                payload.insert(contentsOf: (0 ..< Int.random(in: 1 ... 9, using: &rng)).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }, at: body)
                if Bool.random(using: &rng) { payload.put(UInt64(payload.count - 4 - fieldsAt - 8), at: fieldsAt, size: 8) }
            }
        case 3:                                           // truncate or extend the payload
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
            let layout = m.indexLayout
            #expect(m.indexOffset >= UInt64(ShardFormat.headerFrameSize) && m.indexOffset < image.dataEnd, "case \(n)")
            #expect(layout.start(.documentEnds) + (IndexSection.documentEnds.bytes(entries: UInt64(m.documentCount)) ?? 0) == image.dataEnd, "case \(n)")
            #expect(UInt64(m.documentCount) <= m.tokenCount && UInt64(m.largestFrame) <= m.compressedBytes, "case \(n)")
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
        #expect(rejected > 12_000)
    }

    @Test func everyTruncationOfThePayloadIsRejectedByField() {
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

    /// Index pages behind a recomputed CRC-32: every page of every seed shard, mutated (entries,
    /// previous end, truncation); decoding either names the section and page or yields a page whose
    /// entries lie inside the shard (frames in the data section, ends increasing within the tokens).
    @Test func mutatedIndexPagesNeverTrapAndNameTheSectionAndPage() throws {
        var rng = SplitMix64(seed: 10)
        var rejected = 0, cases = 0
        for image in Self.corpus {
            let metadata = try image.decode(image.payload)
            let file = image.data
            for section in [IndexSection.frameTable, .documentEnds] {
                for p in 0 ..< section.pageCount(entries: metadata.indexLayout.entries(section)) {
                    let (offset, size, _, _) = metadata.indexLayout.page(section, p)
                    let original = Array(file[Int(offset) ..< Int(offset) + size])
                    #expect(throws: Never.self) { _ = try withBytes(of: original) { (b) throws(ShardError) in
                        try IndexPage.decode(b, section: section, page: p, metadata: metadata, path: "mem.zst") } }
                    for _ in 0 ..< 200 {
                        var page = original
                        switch Int.random(in: 0 ..< 4, using: &rng) {
                        case 0: page[Int.random(in: 0 ..< page.count - 4, using: &rng)] = UInt8.random(in: 0 ... 255, using: &rng)
                        case 1:
                            let at = Int.random(in: 0 ..< (page.count - 4) / 8, using: &rng) * 8
                            page.put(Self.interesting(size: 8, current: page.get(at: at, size: 8), dataEnd: image.dataEnd, using: &rng), at: at, size: 8)
                        case 2: page.removeLast(Int.random(in: 1 ... min(page.count, 16), using: &rng))
                        default: page.insert(UInt8.random(in: 0 ... 255, using: &rng), at: Int.random(in: 0 ... page.count - 4, using: &rng))
                        }
                        let recomputed = Bool.random(using: &rng) || page.count < 4 ? page : ShardImage.recomputingCRC(page)
                        cases += 1
                        do {
                            let decoded = try withBytes(of: recomputed) { (b) throws(ShardError) in
                                try IndexPage.decode(b, section: section, page: p, metadata: metadata, path: "mem.zst") }
                            for i in 0 ..< decoded.count {
                                if section == .frameTable {
                                    let f = decoded.frame(i)
                                    #expect(f.offset >= 24 && f.offset + UInt64(f.compressedSize) <= metadata.indexOffset)
                                } else {
                                    #expect(decoded.end(i) > (i == 0 ? decoded.previousEnd : decoded.end(i - 1)) && decoded.end(i) <= metadata.tokenCount)
                                }
                            }
                        } catch {
                            rejected += 1
                            #expect(error.field == section.field && error.problem.contains("page \(p)"), "\(error)")
                        }
                    }
                }
            }
        }
        #expect(rejected > cases / 2)
    }
}
