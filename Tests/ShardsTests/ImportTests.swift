import Foundation
import Testing
import TestSupport
@testable import TokenfeedShards

@Suite struct DatatroveImportTests {
    @Test(arguments: [TokenWidth.uint16, .uint32])
    func importedShardDecompressesToTheOriginalDs(width: TokenWidth) throws {
        let dir = TemporaryDirectory()
        let docs = SyntheticCorpus.documents(seed: 21, count: 200, vocabulary: width == .uint16 ? 32_000 : 128_256, meanLength: 200)
        let prefix = dir.sub("000_part")
        try SyntheticCorpus.writeDatatrove(docs, width: width, prefix: prefix)
        let out = dir.sub("out", create: true)
        var options = ImportOptions(tokensPerFrame: 5000)
        options.readChunkBytes = 4096           // many chunks: exercises streaming
        let summary = try DatatroveImporter.importFile(prefix + ".ds", into: out, options: options)
        #expect(summary.shard == out + "/000_part.zst")
        #expect(summary.metadata.tokenWidth == width)
        #expect(summary.metadata.documentCount == docs.count)
        let result = try run("/usr/bin/zstd", ["-dc", summary.shard])
        #expect(result.stdout == (try Data(contentsOf: URL(fileURLWithPath: prefix + ".ds"))))
        let index = try Data(contentsOf: URL(fileURLWithPath: prefix + ".ds.index"))
        let ends = index.withUnsafeBytes { Array($0.bindMemory(to: UInt64.self)).map { UInt64(littleEndian: $0) } }
        #expect(try ShardReader(path: summary.shard).allDocumentEnds() == ends)
        #expect(ShardVerifier.verify(path: summary.shard).isEmpty)
    }

    @Test func theRealCorpusFixtureImportsByteExactly() throws {
        let dir = TemporaryDirectory()
        for part in ["part_00000", "part_00001"] {
            let ds = Fixtures.path("corpus/llama3-text/\(part).ds")
            let summary = try DatatroveImporter.importFile(ds, into: dir.path, options: ImportOptions(tokensPerFrame: 65_536, vocabularySize: 128_256))
            #expect(summary.metadata.tokenWidth == .uint32)
            #expect(summary.metadata.vocabularySize == 128_256)
            let result = try run("/usr/bin/zstd", ["-dc", summary.shard])
            #expect(result.stdout == (try Data(contentsOf: URL(fileURLWithPath: ds))))
            // Real text compresses well (about 4.7× at level 3 on the full corpus).
            #expect(Double(summary.rawBytes) / Double(summary.metadata.compressedBytes) > 3)
        }
    }

    @Test func badDatatroveInputIsReportedWithTheFile() throws {
        let dir = TemporaryDirectory()
        let out = dir.sub("out", create: true)
        let docs = SyntheticCorpus.documents(seed: 1, count: 10, vocabulary: 1000, meanLength: 50)

        func expectFailure(_ prefix: String, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
            do {
                _ = try DatatroveImporter.importFile(prefix + ".ds", into: out, options: ImportOptions())
                Issue.record("import of \(prefix) succeeded", sourceLocation: sourceLocation)
            } catch {
                #expect(error.description.contains(fragment), "\(error)", sourceLocation: sourceLocation)
                #expect(error.path.hasPrefix(prefix), sourceLocation: sourceLocation)
            }
        }

        // The index does not match the token file (one token short).
        let a = dir.sub("short")
        try SyntheticCorpus.writeDatatrove(docs, width: .uint32, prefix: a, tokenizer: nil)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: a + ".ds"))
        bytes.removeLast(4)
        try bytes.write(to: URL(fileURLWithPath: a + ".ds"))
        expectFailure(a, "does not match the index")

        // A .ds whose size is not a multiple of its token size.
        let b = dir.sub("odd")
        try SyntheticCorpus.writeDatatrove(docs, width: .uint16, prefix: b)
        bytes = try Data(contentsOf: URL(fileURLWithPath: b + ".ds"))
        bytes.append(0)
        try bytes.write(to: URL(fileURLWithPath: b + ".ds"))
        expectFailure(b, "does not match")

        // .ds.metadata says 2 bytes, the files say 4.
        let c = dir.sub("meta")
        try SyntheticCorpus.writeDatatrove(docs, width: .uint32, prefix: c)
        try "tok|2\n1\n1".write(toFile: c + ".ds.metadata", atomically: true, encoding: .utf8)
        expectFailure(c, "disagrees")

        // Index entries out of order.
        let d = dir.sub("order")
        try SyntheticCorpus.writeDatatrove(docs, width: .uint32, prefix: d)
        var index = try Data(contentsOf: URL(fileURLWithPath: d + ".ds.index"))
        index.replaceSubrange(8 ..< 16, with: Data(repeating: 0, count: 8))
        try index.write(to: URL(fileURLWithPath: d + ".ds.index"))
        expectFailure(d, "entry 1")

        // Index missing.
        let e = dir.sub("noindex")
        try SyntheticCorpus.writeDatatrove(docs, width: .uint32, prefix: e)
        try FileManager.default.removeItem(atPath: e + ".ds.index")
        expectFailure(e, "cannot open")

        // Ids beyond the declared vocabulary.
        let f = dir.sub("vocab")
        try SyntheticCorpus.writeDatatrove(docs, width: .uint32, prefix: f)
        #expect(throws: ShardError.self) {
            _ = try DatatroveImporter.importFile(f + ".ds", into: out, options: ImportOptions(vocabularySize: 10))
        }
        // Nothing half-written is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasSuffix(".partial") }.isEmpty)
    }
}

@Suite struct MegatronImportTests {
    /// Writes a Megatron indexed dataset with one sequence per document except the first document,
    /// which is split into two sequences, and an empty document in the middle.
    func writeMegatron(_ docs: [[UInt32]], code: UInt8, prefix: String) throws {
        let width = code == 8 ? 2 : 4
        var bin: [UInt8] = []
        var lengths: [Int32] = [], pointers: [Int64] = [], docIndex: [Int64] = [0]
        for (d, doc) in docs.enumerated() {
            let pieces = d == 0 ? [Array(doc[..<(doc.count / 2)]), Array(doc[(doc.count / 2)...])] : [doc]
            for piece in pieces {
                pointers.append(Int64(bin.count))
                lengths.append(Int32(piece.count))
                for t in piece {
                    if width == 2 { withUnsafeBytes(of: UInt16(t).littleEndian) { bin += $0 } } else { withUnsafeBytes(of: t.littleEndian) { bin += $0 } }
                }
            }
            docIndex.append(Int64(lengths.count))
            if d == 1 { docIndex.append(Int64(lengths.count)) }   // an empty document
        }
        var idx: [UInt8] = Array("MMIDIDX\0\0".utf8)
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { idx += $0 } }
        put(UInt64(1)); idx.append(code); put(UInt64(lengths.count)); put(UInt64(docIndex.count))
        lengths.forEach(put); pointers.forEach(put); docIndex.forEach(put)
        try Data(bin).write(to: URL(fileURLWithPath: prefix + ".bin"))
        try Data(idx).write(to: URL(fileURLWithPath: prefix + ".idx"))
    }

    @Test(arguments: [UInt8(8), 4])
    func megatronImportKeepsTokensAndDocuments(code: UInt8) throws {
        let dir = TemporaryDirectory()
        let docs = SyntheticCorpus.documents(seed: 8, count: 50, vocabulary: 30_000, meanLength: 90)
        try writeMegatron(docs, code: code, prefix: dir.sub("meg_text_document"))
        let summary = try MegatronImporter.importDataset(prefix: dir.sub("meg_text_document"), into: dir.path,
                                                         options: ImportOptions(tokensPerFrame: 512))
        #expect(summary.emptyDocumentsSkipped == 1)
        let reader = try ShardReader(path: summary.shard)
        #expect(reader.metadata.tokenWidth == (code == 8 ? .uint16 : .uint32))
        #expect(try reader.tokens(0 ..< reader.metadata.tokenCount) == docs.flatMap { $0 })
        #expect(try reader.allDocumentEnds() == docs.reduce(into: [UInt64]()) { $0.append(($0.last ?? 0) + UInt64($1.count)) })
    }

    @Test func badMegatronIndexIsReported() throws {
        let dir = TemporaryDirectory()
        let docs = SyntheticCorpus.documents(seed: 8, count: 5, vocabulary: 300, meanLength: 9)
        let prefix = dir.sub("bad")
        try writeMegatron(docs, code: 8, prefix: prefix)
        var idx = try Data(contentsOf: URL(fileURLWithPath: prefix + ".idx"))
        idx[17] = 6                                                  // float64
        try idx.write(to: URL(fileURLWithPath: prefix + ".idx"))
        #expect(throws: ShardError(path: prefix + ".idx", "byte 17: dtype code 6 is not supported (8 = uint16, 4 = int32)")) {
            _ = try MegatronImporter.importDataset(prefix: prefix, into: dir.path, options: ImportOptions())
        }
        idx[0] = UInt8(ascii: "X")
        try idx.write(to: URL(fileURLWithPath: prefix + ".idx"))
        #expect(throws: ShardError.self) { _ = try MegatronImporter.importDataset(prefix: prefix, into: dir.path, options: ImportOptions()) }
    }
}
