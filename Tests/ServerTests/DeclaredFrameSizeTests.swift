#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import TestSupport
import TokenfeedShards
import TokenfeedSystem

/// Shards that declare the largest `tokens_per_frame` the format allows (2²⁸) but hold a few dozen
/// tokens: every buffer is sized from the frames actually present, so nothing allocates the
/// declared 1 GiB (uint32) per frame. The binaries run under an address-space limit far below what a
/// single declared frame would take, and still verify, plan, dump and serve exactly.
@Suite struct DeclaredFrameSizeTests {
    let dir = TemporaryDirectory()
    var dataRoot: String { dir.sub("data") }
    var curriculumPath: String { dir.sub("curriculum.yaml") }
    var shardFolder: String { dir.sub("data/huge") }
    static let declared = ShardFormat.maxTokensPerFrame
    let documents = (0 ..< 3).map { s in SyntheticCorpus.documents(seed: UInt64(40 + s), count: 3, vocabulary: 5000, meanLength: 12) }

    init() throws {
        _ = dir.sub("data/huge", create: true)
        for (s, docs) in documents.enumerated() {
            let path = shardFolder + "/\(s).zst"
            let written = try SyntheticCorpus.writeShard(docs, path: path, width: .uint32, vocabulary: 5000, tokensPerFrame: 4096)
            precondition(written.frameCount == 1, "one frame per shard")
            try Self.declareTokensPerFrame(Self.declared, in: path)
        }
        try """
        sequence_length: 16
        seed: 3
        stages:
          - name: only
            start: 0
            end: 2K
            mixture: {huge: 1}

        """.write(toFile: curriculumPath, atomically: true, encoding: .utf8)
    }

    /// Rewrites the shard's `tokens_per_frame` in the header and in the metadata (CRC recomputed):
    /// a shard of one frame stays valid with any value at least its token count.
    static func declareTokensPerFrame(_ value: Int, in path: String) throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        func put(_ v: UInt32, at offset: Int) { withUnsafeBytes(of: v.littleEndian) { bytes.replaceSubrange(offset ..< offset + 4, with: $0) } }
        put(UInt32(value), at: ShardFormat.headerFrameSize - 4)
        let footer = bytes.count - ShardFormat.footerFrameSize
        let metadataOffset = Int(bytes[(footer + 16) ..< (footer + 24)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        let payload = metadataOffset + ShardFormat.skippableHeaderSize
        put(UInt32(value), at: payload + ShardFormat.metadataTag.count + 4)
        put(crc32(Array(bytes[payload ..< footer - 4])), at: footer - 4)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// The process's peak virtual size in bytes (`VmPeak`).
    static func peakVirtualBytes() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmPeak:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }

    /// Address space allowed to the binaries: their usual size plus room for the data, far below one declared frame.
    static let addressSpaceKiB = 768 * 1024

    /// `executable` with `arguments` under the address-space limit (`ulimit -v`); without the limit
    /// under ThreadSanitizer, whose shadow memory no such limit admits (the results are still checked).
    func limited(_ executable: String, _ arguments: [String]) -> [String] {
        let limit = isThreadSanitized ? "" : "ulimit -v \(Self.addressSpaceKiB) && "
        return ["-c", limit + "exec \"$0\" \"$@\"", executable] + arguments
    }

    @Test func readerAndVerifierSizeBuffersFromTheFramesPresent() throws {
        for (s, docs) in documents.enumerated() {
            let path = shardFolder + "/\(s).zst"
            let reader = try ShardReader(path: path)
            #expect(reader.metadata.tokensPerFrame == Self.declared)
            let before = Self.peakVirtualBytes()
            let tokens = try reader.tokens(0 ..< reader.metadata.tokenCount)
            #expect(ShardVerifier.verify(path: path).isEmpty)
            #expect(Self.peakVirtualBytes() < before + 512 << 20, "peak virtual size \(before) → \(Self.peakVirtualBytes())")
            #expect(tokens == docs.flatMap { $0 })
        }
    }

    @Test func theBinariesNeverAllocateADeclaredFrame() throws {
        let tokenfeed = productsFolder + "/tokenfeed"
        let verify = try run("/bin/sh", limited(tokenfeed, ["shard", "verify", shardFolder]))
        #expect(verify.status == 0, "\(verify.stderr)")
        let plan = try run("/bin/sh", limited(tokenfeed, ["plan", curriculumPath, "--data-root", dataRoot]))
        #expect(plan.status == 0, "\(plan.stderr)")
        let dumpArguments = ["--rank", "1", "--world-size", "2", "--batch-size", "2", "--count", "3"]
        let offline = try run("/bin/sh", limited(tokenfeed, ["dump", "--offline", curriculumPath, "--data-root", dataRoot] + dumpArguments))
        #expect(offline.status == 0, "\(offline.stderr)")
        #expect(!offline.stdout.isEmpty)

        let socket = dir.sub("s.sock")
        let daemon = try DaemonProcess(limited(productsFolder + "/tokenfeedd", ["--curriculum", curriculumPath, "--data-root", dataRoot,
                                                                               "--socket", socket, "--preload-bytes", "1MiB"]),
                                       socket: socket, executable: "/bin/sh")
        #expect(daemon.process.isRunning, "\(daemon.stderr)")
        let served = try run(tokenfeed, ["dump", "--socket", socket] + dumpArguments)
        #expect(served.status == 0, "\(served.stderr)")
        #expect(served.stdout == offline.stdout, "the daemon serves what dump --offline computes")
        #expect(daemon.process.isRunning, "\(daemon.stderr)")
        #expect(daemon.terminate() == 0, "\(daemon.stderr)")
    }
}
