import Foundation
import Testing
import TestSupport
@testable import TokenfeedShards

/// The tokenizer's name lives in the metadata's tagged-field section (since format version 2; old
/// shards are upgraded, ShardUpgradeTests). Imports keep datatrove's `.ds.metadata` name or
/// `--tokenizer`; datatrove loss masks are refused unless ignored.
@Suite struct TokenizerIdentityTests {
    let dir = TemporaryDirectory()
    let docs = SyntheticCorpus.documents(seed: 9, count: 12, vocabulary: 1000, meanLength: 40)

    @Test func theWriterKeepsTheTokenizerAndTheReaderReadsIt() throws {
        let path = dir.sub("a.zst")
        let writer = try ShardWriter(path: path, tokenWidth: .uint16, vocabularySize: 1000, tokensPerFrame: 64, tokenizer: "gpt2")
        for d in docs { try writer.write(tokens: d); try writer.endDocument() }
        let written = try writer.finish()
        let read = try ShardReader(path: path).metadata
        #expect(read == written)
        #expect(read.tokenizer == "gpt2" && read.formatVersion == 3)
        #expect(ShardVerifier.verify(path: path).isEmpty)
        // Stock zstd still prints exactly the tokens: the section is inside a skippable frame.
        #expect(try run("/usr/bin/zstd", ["-dc", path]).stdout == Data(SyntheticCorpus.bytes(docs, width: .uint16)))
    }

    @Test func badTaggedFieldsAreNamed() throws {
        let path = dir.sub("t.zst")
        let writer = try ShardWriter(path: path, tokenWidth: .uint16, vocabularySize: 1000, tokensPerFrame: 64, tokenizer: "gpt2")
        for d in docs { try writer.write(tokens: d); try writer.endDocument() }
        try writer.finish()
        let image = try ShardImage(path: path)
        let body = image.payload.count - 4
        // The name's last byte made a control character; the entry's length past the end; an unknown tag skipped.
        var control = image.payload
        control[body - 1] = 0x1B
        #expect(throws: ShardError.self) { try image.decode(ShardImage.recomputingCRC(control)) }
        #expect((try? image.decode(ShardImage.recomputingCRC(control))) == nil)
        do { _ = try image.decode(ShardImage.recomputingCRC(control)) } catch { #expect(error.field == "tokenizer") }
        var long = image.payload
        long.put(1000, at: body - 4 - 4, size: 4)              // u32 length of the "gpt2" entry
        do { _ = try image.decode(ShardImage.recomputingCRC(long)); Issue.record("accepted") } catch { #expect(error.field == "tagged_fields") }
        var unknown = image.payload
        unknown.put(7, at: body - 4 - 4 - 2, size: 2)           // the tag: now one this build does not know
        #expect(try image.decode(ShardImage.recomputingCRC(unknown)).tokenizer == nil)
        #expect(throws: ShardError.self) {
            try ShardWriter(path: dir.sub("n.zst"), tokenWidth: .uint16, vocabularySize: 1000, tokenizer: "bad\nname")
        }
    }

    @Test func datatroveImportKeepsTheTokenizerAndRefusesLossMasks() throws {
        let prefix = dir.sub("000_part")
        try SyntheticCorpus.writeDatatrove(docs, width: .uint16, prefix: prefix, tokenizer: "HuggingFaceTB/SmolLM2-135M")
        let out = dir.sub("out", create: true)
        let summary = try DatatroveImporter.importFile(prefix + ".ds", into: out, options: ImportOptions(tokensPerFrame: 64))
        #expect(try ShardReader(path: summary.shard).metadata.tokenizer == "HuggingFaceTB/SmolLM2-135M")
        var other = ImportOptions(tokensPerFrame: 64)
        other.tokenizer = "gpt2"
        #expect(throws: ShardError.self) { try DatatroveImporter.importFile(prefix + ".ds", into: out, options: other) }

        try Data(repeating: 1, count: 100).write(to: URL(fileURLWithPath: prefix + ".ds.loss"))
        let refused = try run(productsFolder + "/tokenfeed", ["shard", "import", "--from", "datatrove", prefix + ".ds", "--out", out,
                                                               "--tokens-per-frame", "64"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("000_part.ds.loss: loss masks are not supported") && refused.stderr.contains("--ignore-loss-masks"), "\(refused.stderr)")
        let ignored = try run(productsFolder + "/tokenfeed", ["shard", "import", "--from", "datatrove", prefix + ".ds", "--out", out,
                                                               "--tokens-per-frame", "64", "--ignore-loss-masks"])
        #expect(ignored.status == 0, "\(ignored.stderr)")
        let inspect = try run(productsFolder + "/tokenfeed", ["shard", "inspect", out + "/000_part.zst"])
        #expect(String(decoding: inspect.stdout, as: UTF8.self).contains("tokenizer     HuggingFaceTB/SmolLM2-135M"), "\(inspect)")
    }

    @Test func shardsOfOneDatasetMustNotNameDifferentTokenizers() throws {
        let folder = dir.sub("ds", create: true)
        for (name, tokenizer) in [("a", "gpt2"), ("b", nil), ("c", "llama3")] {
            let writer = try ShardWriter(path: folder + "/\(name).zst", tokenWidth: .uint16, vocabularySize: 1000, tokensPerFrame: 64, tokenizer: tokenizer)
            for d in docs { try writer.write(tokens: d); try writer.endDocument() }
            try writer.finish()
        }
        let error = #expect(throws: ShardError.self) { try DatasetFolder.open(path: folder) }
        #expect(error?.path == folder + "/c.zst" && error?.field == "tokenizer")
        try FileManager.default.removeItem(atPath: folder + "/c.zst")
        #expect(try DatasetFolder.open(path: folder).tokenizer == "gpt2")
    }
}
