import Foundation
import TokenfeedMixing
import TokenfeedShards

/// Test helpers shared by the test targets: temporary folders, a seeded generator, synthetic corpora
/// written as datatrove files or shards, and the repository's fixtures.
public enum Fixtures {
    /// The repository's root folder.
    public static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0 ..< 3 { url.deleteLastPathComponent() }     // Tests/Support/Support.swift → root
        return url.path
    }()

    /// `fixtures/<relative>` inside the repository.
    public static func path(_ relative: String) -> String { repositoryRoot + "/fixtures/" + relative }
}

/// A folder under the system temporary directory, removed when the value is released.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init(_ label: String = "tokenfeed-test") {
        var template = Array((NSTemporaryDirectory() + "/\(label)-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// `path/<name>`, creating intermediate folders of `name` if `create` is set.
    public func sub(_ name: String, create: Bool = false) -> String {
        let p = path + "/" + name
        if create { try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true) }
        return p
    }
}

/// Synthetic documents: Zipf-like token ids (small ids frequent), lengths spread around a mean,
/// every document ending with `eos`.
public enum SyntheticCorpus {
    public static func documents(seed: UInt64, count: Int, vocabulary: UInt32, meanLength: Int, eos: UInt32? = nil) -> [[UInt32]] {
        var rng = SplitMix64(seed: seed)
        let end = eos ?? (vocabulary - 1)
        return (0 ..< count).map { _ in
            let length = 1 + Int.random(in: 0 ..< 2 * meanLength, using: &rng)
            var doc = (0 ..< length - 1).map { _ -> UInt32 in
                let u = Double.random(in: 0 ..< 1, using: &rng)
                return UInt32(min(Double(vocabulary - 2), pow(Double(vocabulary - 1), u * u)))
            }
            doc.append(end)
            return doc
        }
    }

    /// Little-endian bytes of the concatenated documents.
    public static func bytes(_ documents: [[UInt32]], width: TokenWidth) -> [UInt8] {
        var out: [UInt8] = []
        for doc in documents {
            for t in doc {
                if width == .uint16 { withUnsafeBytes(of: UInt16(t).littleEndian) { out += $0 } } else { withUnsafeBytes(of: t.littleEndian) { out += $0 } }
            }
        }
        return out
    }

    /// Writes `prefix.ds`, `prefix.ds.index` and (when `tokenizer` is given) `prefix.ds.metadata`, as datatrove does.
    public static func writeDatatrove(_ documents: [[UInt32]], width: TokenWidth, prefix: String, tokenizer: String? = "test/tokenizer") throws {
        try Data(bytes(documents, width: width)).write(to: URL(fileURLWithPath: prefix + ".ds"))
        var index: [UInt8] = []
        var end: UInt64 = 0
        for doc in documents { end += UInt64(doc.count); withUnsafeBytes(of: end.littleEndian) { index += $0 } }
        try Data(index).write(to: URL(fileURLWithPath: prefix + ".ds.index"))
        if let tokenizer {
            try "\(tokenizer)|\(width.bytes)\n\(end)\n\(end)".write(toFile: prefix + ".ds.metadata", atomically: true, encoding: .utf8)
        }
    }

    /// Writes the whole documents of the corpus fixture's `part` (e.g. `part_00000`) into `count`
    /// shards `folder/part-<i>.zst` of about equal document counts.
    public static func splitFixturePart(_ part: String, into count: Int, folder: String, tokensPerFrame: Int) throws {
        let ds = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("corpus/llama3-text/\(part).ds")))
        let index = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("corpus/llama3-text/\(part).ds.index")))
        let tokens = ds.withUnsafeBytes { Array($0.bindMemory(to: UInt32.self)).map { UInt32(littleEndian: $0) } }
        let ends = index.withUnsafeBytes { Array($0.bindMemory(to: UInt64.self)).map { Int(UInt64(littleEndian: $0)) } }
        var docs: [[UInt32]] = []
        var start = 0
        for end in ends { docs.append(Array(tokens[start ..< end])); start = end }
        let per = (docs.count + count - 1) / count
        for s in 0 ..< count {
            let slice = Array(docs[min(docs.count, s * per) ..< min(docs.count, (s + 1) * per)])
            try writeShard(slice, path: folder + "/part-\(s).zst", vocabulary: 128_256, tokensPerFrame: tokensPerFrame)
        }
    }

    /// Writes the data root most engine and server tests share, under `root`:
    /// `web` (the fixture's part_00000 in 3 shards, 3,000-token frames), `code` (part_00001, one shard,
    /// 2,048-token frames) and `tiny` (3 shards of 4 synthetic uint16 documents, 50-token frames — it
    /// runs out quickly and wraps into many epochs).
    public static func writeTestDataRoot(_ root: String) throws {
        func folder(_ name: String) throws -> String {
            try FileManager.default.createDirectory(atPath: root + "/" + name, withIntermediateDirectories: true)
            return root + "/" + name
        }
        try splitFixturePart("part_00000", into: 3, folder: try folder("web"), tokensPerFrame: 3000)
        try splitFixturePart("part_00001", into: 1, folder: try folder("code"), tokensPerFrame: 2048)
        let tiny = try folder("tiny")
        for s in 0 ..< 3 {
            let docs = documents(seed: UInt64(100 + s), count: 4, vocabulary: 60_000, meanLength: 30)
            try writeShard(docs, path: tiny + "/shard-\(s).zst", width: .uint16, vocabulary: 65_536, tokensPerFrame: 50)
        }
        for name in ["web", "code", "tiny"] { try writeManifest(folder: root + "/" + name) }
    }

    /// Writes `folder`'s manifest (as `tokenfeed shard index` does), so that opening it reads no shard.
    public static func writeManifest(folder: String) throws {
        try DatasetManifest.build(shardPaths: try DatasetFolder.shardPaths(in: folder)).write(folder: folder)
    }

    /// Writes one shard holding `documents`.
    @discardableResult
    public static func writeShard(_ documents: [[UInt32]], path: String, width: TokenWidth = .uint32,
                                  vocabulary: UInt32? = nil, tokensPerFrame: Int = 4096, tokenizer: String? = nil) throws -> ShardMetadata {
        let writer = try ShardWriter(path: path, tokenWidth: width, vocabularySize: vocabulary, tokensPerFrame: tokensPerFrame,
                                     tokenizer: tokenizer)
        for doc in documents {
            try writer.write(tokens: doc)
            try writer.endDocument()
        }
        return try writer.finish()
    }
}

/// Runs a program to completion and returns its exit status and standard output.
@discardableResult
public func run(_ executable: String, _ arguments: [String], stdin: Data? = nil) throws -> (status: Int32, stdout: Data, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    if let stdin {
        let input = Pipe()
        process.standardInput = input
        try process.run()
        input.fileHandleForWriting.write(stdin)
        try input.fileHandleForWriting.close()
    } else {
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }
    // Read both pipes concurrently so a full stderr pipe cannot block the child.
    let errBox = DataBox()
    let errRead = DispatchGroup()
    errRead.enter()
    DispatchQueue.global().async {
        errBox.data = err.fileHandleForReading.readDataToEndOfFile()
        errRead.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    errRead.wait()
    let errData = errBox.data
    return (process.terminationStatus, outData, String(decoding: errData, as: UTF8.self))
}

/// Bytes handed from the reading thread to the caller; `DispatchGroup.wait` orders the write before the read.
private final class DataBox: @unchecked Sendable {
    var data = Data()
}

/// The folder holding the built products (`tokenfeed`, `tokenfeedd`) of this test run.
public let productsFolder: String = {
    // The test bundle runs from the products folder (e.g. .build/debug/tokenfeedPackageTests.xctest).
    var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    while url.path != "/" {
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("tokenfeed").path),
           !url.lastPathComponent.hasSuffix(".xctest") {
            return url.path
        }
        url.deleteLastPathComponent()
    }
    return Fixtures.repositoryRoot + "/.build/debug"
}()

/// Whether this test process runs under ThreadSanitizer (`swift test --sanitize=thread`): its
/// runtime's entry point is linked in. The products of such a run are instrumented too: several
/// times slower, and with an address space (TSan's shadow memory) that no `ulimit -v` admits.
public let isThreadSanitized: Bool = dlsym(nil, "__tsan_init") != nil
