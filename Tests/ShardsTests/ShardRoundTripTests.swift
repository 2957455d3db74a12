import Foundation
import Testing
import TestSupport
import TokenfeedMixing
@testable import TokenfeedShards

@Suite struct ShardRoundTripTests {
    @Test(arguments: [TokenWidth.uint16, .uint32], [1, 7, 1000, 4096])
    func everyRangeReadsBackExactly(width: TokenWidth, tokensPerFrame: Int) throws {
        let dir = TemporaryDirectory()
        let docs = SyntheticCorpus.documents(seed: UInt64(tokensPerFrame) &+ UInt64(width.bytes), count: 40,
                                             vocabulary: width == .uint16 ? 50_000 : 128_256, meanLength: 120)
        let flat = docs.flatMap { $0 }
        let path = dir.sub("a.zst")
        let written = try SyntheticCorpus.writeShard(docs, path: path, width: width, tokensPerFrame: tokensPerFrame)
        let reader = try ShardReader(path: path)
        #expect(reader.metadata == written)
        #expect(reader.metadata.tokenCount == UInt64(flat.count))
        #expect(reader.metadata.frameCount == (flat.count + tokensPerFrame - 1) / tokensPerFrame)
        let ends = try reader.allDocumentEnds()
        #expect(ends == docs.reduce(into: [UInt64]()) { $0.append(($0.last ?? 0) + UInt64($1.count)) })
        #expect(try reader.tokens(0 ..< UInt64(flat.count)) == flat)
        var rng = SplitMix64(seed: 99)
        for _ in 0 ..< 50 {
            let a = UInt64.random(in: 0 ..< UInt64(flat.count), using: &rng)
            let b = UInt64.random(in: a ... UInt64(flat.count), using: &rng)
            #expect(try reader.tokens(a ..< b) == Array(flat[Int(a) ..< Int(b)]))
        }
        // Document lookup agrees with the ends.
        var locator = DocumentLocator()
        for (d, end) in ends.enumerated() {
            #expect(try reader.document(containingToken: end - 1) == d)
            #expect(try reader.documentStart(d) == (d == 0 ? 0 : ends[d - 1]))
            #expect(try locator.document(containingToken: end - 1, in: reader) == (d, end))
        }
        #expect(ShardVerifier.verify(path: path).isEmpty)
    }

    @Test func stockZstdPrintsTheRawTokenStream() throws {
        let dir = TemporaryDirectory()
        for width in [TokenWidth.uint16, .uint32] {
            let docs = SyntheticCorpus.documents(seed: 5, count: 30, vocabulary: 60_000, meanLength: 300)
            let path = dir.sub("s\(width.bytes).zst")
            try SyntheticCorpus.writeShard(docs, path: path, width: width, tokensPerFrame: 1000)
            let result = try run("/usr/bin/zstd", ["-dc", path])
            #expect(result.status == 0, "\(result.stderr)")
            #expect([UInt8](result.stdout) == SyntheticCorpus.bytes(docs, width: width))
        }
    }

    @Test func writerRejectsIdsBeyondTheVocabularyAndEmptyDocuments() throws {
        let dir = TemporaryDirectory()
        let writer = try ShardWriter(path: dir.sub("v.zst"), tokenWidth: .uint32, vocabularySize: 100)
        #expect(throws: ShardError.self) { try writer.write(tokens: [1, 2, 100]) }
        let writer2 = try ShardWriter(path: dir.sub("e.zst"), tokenWidth: .uint32, vocabularySize: nil)
        #expect(throws: ShardError.self) { try writer2.endDocument() }
        try writer2.write(tokens: [5, 6, 7])
        try writer2.endDocument()
        let metadata = try writer2.finish()
        #expect(metadata.vocabularySize == 8)         // largest id seen + 1
        #expect(!FileManager.default.fileExists(atPath: dir.sub("v.zst")))   // never finished
    }

    @Test func aThousandShardFolderOpensFromMetadataAlone() throws {
        let dir = TemporaryDirectory()
        let folder = dir.sub("ds", create: true)
        var expectedTokens: UInt64 = 0
        for i in 0 ..< 1000 {
            let docs = SyntheticCorpus.documents(seed: UInt64(i), count: 2, vocabulary: 1000, meanLength: 8)
            expectedTokens += UInt64(docs.reduce(0) { $0 + $1.count })
            try SyntheticCorpus.writeShard(docs, path: folder + "/" + String(format: "%05d.zst", i), tokensPerFrame: 16)
        }
        let dataset = try DatasetFolder.open(path: folder)
        #expect(dataset.shards.count == 1000)
        #expect(dataset.tokenCount == expectedTokens)
        #expect(dataset.shards[0].path.hasSuffix("00000.zst") && dataset.shards[999].path.hasSuffix("00999.zst"))
        #expect(dataset.shard(containingToken: 0) == 0)
        #expect(dataset.shard(containingToken: expectedTokens - 1) == 999)
        #expect(dataset.shard(containingToken: dataset.tokenStarts[500]) == 500)
    }

    @Test func missingOrEmptyDatasetFolderIsAnError() throws {
        let dir = TemporaryDirectory()
        #expect(throws: ShardError.self) { try DatasetFolder.open(path: dir.sub("nope")) }
        let empty = dir.sub("empty", create: true)
        do {
            _ = try DatasetFolder.open(path: empty)
            Issue.record("an empty folder opened")
        } catch {
            #expect(error.description.contains("holds no shard"))
        }
    }

    /// A folder of tokenized files that were never imported says what to run.
    @Test func aFolderOfUnimportedFilesSaysHowToImportThem() throws {
        let dir = TemporaryDirectory()
        let datatrove = dir.sub("dt", create: true)
        try SyntheticCorpus.writeDatatrove([[1, 2, 3], [4, 5]], width: .uint16, prefix: datatrove + "/part")
        do {
            _ = try DatasetFolder.open(path: datatrove)
            Issue.record("a folder of .ds files opened")
        } catch {
            #expect(error.description.contains("holds 1 datatrove file(s) (*.ds): import them with `tokenfeed shard import --from datatrove \(datatrove) --out SHARD_FOLDER`"), "\(error)")
        }
        let megatron = dir.sub("mg", create: true)
        for name in ["a.bin", "a.idx"] { _ = FileManager.default.createFile(atPath: megatron + "/" + name, contents: Data()) }
        do {
            _ = try DatasetFolder.open(path: megatron)
            Issue.record("a folder of Megatron files opened")
        } catch {
            #expect(error.description.contains("holds 1 Megatron dataset(s) (*.bin + *.idx): import them with `tokenfeed shard import --from megatron"), "\(error)")
        }
    }
}
