import Foundation
import Testing
import TestSupport
import TokenfeedShards

/// `tokenfeed export`, run as the built binary over real shard files; every format read back and
/// compared sequence by sequence with `tokenfeed dump --offline` over the same range.
@Suite struct ExportTests {
    static var tokenfeed: String { productsFolder + "/tokenfeed" }

    /// A data root (web, code, tiny) and two curricula over it, concat and bestfit, each with two
    /// stages: `a` (web, code) until token 40,000, then `b` (web, code, tiny).
    final class Corpus: Sendable {
        let dir = TemporaryDirectory("tokenfeed-export")
        let root: String
        let concat: String
        let bestfit: String

        init() throws {
            root = dir.sub("data", create: true)
            try SyntheticCorpus.writeTestDataRoot(root)
            concat = dir.sub("concat.yaml")
            bestfit = dir.sub("bestfit.yaml")
            for (path, packing) in [(concat, "concat"), (bestfit, "{mode: bestfit, pad_token: 7, lookahead: 8}")] {
                try """
                sequence_length: 64
                seed: 3
                packing: \(packing)
                stages:
                  - name: a
                    start: 0
                    end: 40000
                    mixture: {web: 0.7, code: 0.3}
                  - name: b
                    start: 40000
                    end: 120000
                    mixture: {web: 0.2, code: 0.3, tiny: 0.5}
                """.write(toFile: path, atomically: true, encoding: .utf8)
            }
        }

        func out(_ name: String) -> String { dir.sub(name) }
    }

    /// One sequence as `dump --offline --json` prints it.
    struct Row: Equatable {
        var tokens: [UInt32]
        var cuSeqlens: [Int]
        var padded: Int
        var provenance: [String]
    }

    static func dump(_ curriculum: String, root: String, first: Int, count: Int) throws -> [Row] {
        let result = try run(tokenfeed, ["dump", "--offline", curriculum, "--data-root", root, "--json",
                                         "--step", "\(first)", "--count", "\(count)"])
        #expect(result.status == 0, "\(result.stderr)")
        return try String(decoding: result.stdout, as: UTF8.self).split(separator: "\n").map { line in
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let tokens = try #require(object["tokens"] as? [Int]).map { UInt32($0) }
            let mask = (object["loss_mask"] as? [Int]) ?? []
            let provenance = try #require(object["provenance"] as? [[String: Any]]).map {
                "\($0["shard"]!):\($0["document"]!):\($0["offset"]!):\($0["length"]!)"
            }
            return Row(tokens: tokens, cuSeqlens: try #require(object["cu_seqlens"] as? [Int]),
                       padded: mask.filter { $0 == 0 }.count, provenance: provenance)
        }
    }

    static func export(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let result = try run(tokenfeed, ["export"] + arguments)
        return (result.status, String(decoding: result.stdout, as: UTF8.self), result.stderr)
    }

    static func manifest(_ folder: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/MANIFEST.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// The file groups of a manifest: (files, first sequence, end sequence).
    static func groups(_ folder: String) throws -> [(files: [String], first: Int, end: Int)] {
        try #require(try manifest(folder)["groups"] as? [[String: Any]]).map {
            ($0["files"] as! [String], $0["first_sequence"] as! Int, $0["end_sequence"] as! Int)
        }
    }

    static func littleEndian<T: FixedWidthInteger>(_ path: String, as: T.Type) throws -> [T] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return data.withUnsafeBytes { raw in
            (0 ..< raw.count / MemoryLayout<T>.size).map { T(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self)) }
        }
    }

    // MARK: - Formats

    @Test(arguments: ["concat", "bestfit"])
    func shardsServeBackTheSameRowsAcrossAStageBoundary(packing: String) throws {
        let corpus = try Corpus()
        let curriculum = packing == "concat" ? corpus.concat : corpus.bestfit
        let out = corpus.out("merged")
        // Tokens 35,000..45,000 of L = 64: sequences 547..<704, across the boundary at 625.
        let result = try Self.export([curriculum, "--data-root", corpus.root, "--out", out, "--tokens", "35000..45000",
                                      "--shard-tokens", "3000"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("sequences 547..<704 (157)"), "\(result.stdout)")
        let expected = try Self.dump(curriculum, root: corpus.root, first: 547, count: 157)
        let served = try Self.dump(out + "/export.tokenfeed.yaml", root: corpus.dir.path, first: 0, count: 157)
        #expect(served.map(\.tokens) == expected.map(\.tokens))
        #expect(served.map(\.padded) == expected.map(\.padded))
        if packing == "bestfit" { #expect(expected.contains { $0.padded > 0 }, "the range has padded rows") }
        let shards = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasSuffix(".zst") }
        #expect(shards.count == 4, "157 sequences of 65 tokens at 46 sequences a file: \(shards.sorted())")
        #expect(try Self.groups(out).map(\.first) == [547, 593, 639, 685])
        #expect(try Self.manifest(out)["complete"] as? Bool == true)
    }

    @Test func datatroveWindowsAreTheSequencesAndItsIndexTheirBoundaries() throws {
        let corpus = try Corpus()
        let out = corpus.out("dt")
        let result = try Self.export([corpus.bestfit, "--data-root", corpus.root, "--out", out, "--stage", "b",
                                      "--format", "datatrove", "--shard-tokens", "10000"])
        #expect(result.status == 0, "\(result.stderr)")
        var rows: [Row] = []
        for group in try Self.groups(out) {
            let name = group.files[0].replacingOccurrences(of: ".ds.metadata", with: "").replacingOccurrences(of: ".ds", with: "")
            let tokens = try Self.littleEndian(out + "/" + name + ".ds", as: UInt32.self)   // the test root is uint32
            let ends = try Self.littleEndian(out + "/" + name + ".ds.index", as: UInt64.self)
            #expect(tokens.count % 65 == 0)
            #expect(ends.last.map(Int.init) == tokens.count)
            // DatatroveFileDataset: window i is tokens [i·(L+1), (i+1)·(L+1)); positions restart at the index's ends.
            for i in 0 ..< tokens.count / 65 {
                let lo = i * 65, hi = lo + 65
                let cut = [0] + ends.map(Int.init).filter { $0 > lo && $0 <= hi }.map { $0 - lo }
                rows.append(Row(tokens: Array(tokens[lo ..< hi]), cuSeqlens: cut, padded: 0, provenance: []))
            }
        }
        let first = try Self.groups(out).first!.first
        let expected = try Self.dump(corpus.bestfit, root: corpus.root, first: first, count: rows.count)
        #expect(first == 625)
        #expect(rows.map(\.tokens) == expected.map(\.tokens))
        #expect(rows.map(\.cuSeqlens) == expected.map(\.cuSeqlens))
    }

    @Test func megatronItemIsSequence() throws {
        let corpus = try Corpus()
        let out = corpus.out("mg")
        let result = try Self.export([corpus.concat, "--data-root", corpus.root, "--out", out, "--steps", "10..20",
                                      "--world-size", "2", "--batch-size", "3", "--format", "megatron"])
        #expect(result.status == 0, "\(result.stderr)")
        let group = try #require(try Self.groups(out).first)
        #expect(group.first == 60 && group.end == 120)
        let idx = try Data(contentsOf: URL(fileURLWithPath: out + "/" + group.files[1]))
        #expect(idx.prefix(9) == Data("MMIDIDX".utf8 + [0, 0]))
        func u64(_ at: Int) -> UInt64 { idx.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt64.self)) } }
        #expect(u64(9) == 1)
        #expect(idx[17] == 4, "int32 for a 32-bit stream")
        let count = Int(u64(18))
        #expect(count == 60 && u64(26) == 61)
        let lengths: [Int32] = idx.withUnsafeBytes { raw in (0 ..< count).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 34 + $0 * 4, as: Int32.self)) } }
        let pointers: [Int64] = idx.withUnsafeBytes { raw in (0 ..< count).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 34 + count * 4 + $0 * 8, as: Int64.self)) } }
        let bin = try Self.littleEndian(out + "/" + group.files[0], as: Int32.self)
        let items = (0 ..< count).map { i in bin[Int(pointers[i]) / 4 ..< Int(pointers[i]) / 4 + Int(lengths[i])].map { UInt32($0) } }
        #expect(items == (try Self.dump(corpus.concat, root: corpus.root, first: 60, count: 60)).map(\.tokens))
    }

    @Test func provenanceTrailMatchesTheDump() throws {
        let corpus = try Corpus()
        let out = corpus.out("prov")
        let result = try Self.export([corpus.bestfit, "--data-root", corpus.root, "--out", out, "--tokens", "..3200",
                                      "--format", "jsonl-provenance"])
        #expect(result.status == 0, "\(result.stderr)")
        let text = try String(contentsOfFile: out + "/part-000000.jsonl", encoding: .utf8)
        let lines = text.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let expected = try Self.dump(corpus.bestfit, root: corpus.root, first: 0, count: 50)
        #expect(lines.count == 50)
        #expect(lines.map { $0["cu_seqlens"] as! [Int] } == expected.map(\.cuSeqlens))
        #expect(lines.map { ($0["provenance"] as! [[String: Any]]).map { "\($0["shard"]!):\($0["document"]!):\($0["offset"]!):\($0["length"]!)" } }
                == expected.map(\.provenance))
        #expect(lines.allSatisfy { $0["tokens"] as? Int == 65 && $0["input_ids"] == nil })
    }

    // MARK: - Documents

    /// `--documents`: each document the range draws, whole, once; consecutive ranges split the
    /// documents between them (a document belongs to the range drawing its first token).
    @Test(arguments: ["concat", "bestfit"])
    func documentsArePartitionedByRangeAndWhole(packing: String) throws {
        let corpus = try Corpus()
        let curriculum = packing == "concat" ? corpus.concat : corpus.bestfit
        func documents(_ tokens: String, _ name: String) throws -> [String] {
            let out = corpus.out(name)
            let result = try Self.export([curriculum, "--data-root", corpus.root, "--out", out, "--tokens", tokens,
                                          "--documents", "--format", "jsonl-provenance", "--shard-tokens", "2000"])
            #expect(result.status == 0, "\(result.stderr)")
            return try Self.groups(out).flatMap { group in
                try String(contentsOfFile: out + "/" + group.files[0], encoding: .utf8).split(separator: "\n").map { line in
                    let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                    return "\(o["dataset"]!)/\(o["shard"]!)/\(o["document"]!)/\(o["epoch"]!)"
                }
            }
        }
        let whole = try documents("30000..50000", "all")
        let left = try documents("30000..41000", "left"), right = try documents("41000..50000", "right")
        #expect(!whole.isEmpty)
        #expect(Set(whole).count == whole.count, "each document once")
        #expect(left + right == whole)

        // Tokens: every exported document is its source document, whole.
        let out = corpus.out("tokens")
        let result = try Self.export([curriculum, "--data-root", corpus.root, "--out", out, "--tokens", "30000..50000",
                                      "--documents", "--format", "datatrove"])
        #expect(result.status == 0, "\(result.stderr)")
        let tokens = try Self.littleEndian(out + "/part-000000.ds", as: UInt32.self)
        let ends = [0] + (try Self.littleEndian(out + "/part-000000.ds.index", as: UInt64.self)).map(Int.init)
        #expect(ends.count - 1 == whole.count)
        for (k, id) in whole.enumerated() {
            let parts = id.split(separator: "/")     // dataset/dataset/shard.zst/document/epoch
            let reader = try ShardReader(path: corpus.root + "/" + parts[1] + "/" + parts[2])
            let d = Int(parts[3])!
            let range = try reader.documentStart(d) ..< reader.documentEnd(d)
            #expect(Array(tokens[ends[k] ..< ends[k + 1]]) == (try reader.tokens(range)), "document \(id)")
        }
    }

    // MARK: - Resume and refusals

    /// Killed at once (maybe before the manifest exists) or once three parts are complete.
    @Test(arguments: [0, 3])
    func resumedExportIsByteIdenticalToAnUninterruptedOne(killAfterGroups: Int) throws {
        let corpus = try Corpus()
        let reference = corpus.out("reference"), resumed = corpus.out("resumed")
        let arguments = [corpus.bestfit, "--data-root", corpus.root, "--tokens", "..60000", "--shard-tokens", "4000", "--threads", "2"]
        #expect(try Self.export(arguments + ["--out", reference]).status == 0)

        // A real interruption: kill -9 at some point of the run (wherever it lands, the result must be the same).
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.tokenfeed)
        process.arguments = ["export"] + arguments + ["--out", resumed]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Kill once some groups are complete (or whenever the run ends first).
        while process.isRunning, killAfterGroups > 0, ((try? Self.groups(resumed)) ?? []).count < killAfterGroups { usleep(2_000) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        // And the worst moment: a group renamed into place but not yet recorded, and a .partial left.
        var groups = (try? Self.groups(resumed)) ?? []
        if groups.count >= 2 {
            var m = try Self.manifest(resumed)
            groups.removeLast()
            m["groups"] = (m["groups"] as! [[String: Any]]).dropLast().map { $0 }
            m["complete"] = false
            try JSONSerialization.data(withJSONObject: m).write(to: URL(fileURLWithPath: resumed + "/MANIFEST.json"))
        }
        _ = FileManager.default.createFile(atPath: resumed + "/part-000003.zst.partial", contents: Data([1, 2, 3]))
        _ = FileManager.default.createFile(atPath: resumed + "/MANIFEST.json.tmp-1f2e3d", contents: Data("{".utf8))

        let result = try Self.export(arguments + ["--out", resumed, "--resume"])
        #expect(result.status == 0, "\(result.stderr)")
        let names = try FileManager.default.contentsOfDirectory(atPath: reference).sorted()
        #expect(try FileManager.default.contentsOfDirectory(atPath: resumed).sorted() == names)
        // Every file but the manifest (its group order may differ) and the serving curriculum (it names its folder).
        for name in names where name != "MANIFEST.json" && name != "export.tokenfeed.yaml" {
            #expect(FileManager.default.contentsEqual(atPath: reference + "/" + name, andPath: resumed + "/" + name), "\(name)")
        }
        #expect(try Self.groups(resumed).map(\.first) == (try Self.groups(reference)).map(\.first))
    }

    @Test func refusesWhatItCannotDoNamingTheOption() throws {
        let corpus = try Corpus()
        let out = corpus.out("x")
        #expect(try Self.export([corpus.concat, "--data-root", corpus.root, "--out", out, "--stage", "c"]).stderr
                .contains("--stage: the curriculum has no stage 'c' (its stages: 'a', 'b')"))
        #expect(try Self.export([corpus.concat, "--data-root", corpus.root, "--out", out, "--tokens", "5000..5000"]).stderr
                .contains("--tokens 5000..5000: the start must be below the end"))
        #expect(try Self.export([corpus.concat, "--data-root", corpus.root, "--out", out, "--tokens", "100000..200000"]).stderr
                .contains("past the curriculum's 1875 sequences"))
        #expect(try Self.export([corpus.concat, "--data-root", corpus.root, "--out", out, "--steps", "0..2"]).status != 0)

        #expect(try Self.export([corpus.concat, "--data-root", corpus.root, "--out", out, "--stage", "a"]).status == 0)
        let again = try Self.export([corpus.concat, "--data-root", corpus.root, "--out", out, "--stage", "a"])
        #expect(again.status == 1 && again.stderr.contains("the folder is not empty; give --resume"))
        let other = try Self.export([corpus.concat, "--data-root", corpus.root, "--out", out, "--stage", "b", "--resume"])
        #expect(other.status == 1 && other.stderr.contains("range: was --stage a, now --stage b"), "\(other.stderr)")
        let same = try Self.export([corpus.concat, "--data-root", corpus.root, "--out", out, "--stage", "a", "--resume"])
        #expect(same.status == 0, "resuming a complete export rewrites nothing and succeeds: \(same.stderr)")
    }
}
