import ArgumentParser
import Foundation
import TokenfeedShards

/// `tokenfeed shard inspect PATH`
struct ShardInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a shard (or a folder of shards): dtype, vocabulary, tokens, documents, frames, compression, document lengths.")

    @Argument(help: "A shard file or a dataset folder.")
    var path: String

    func run() throws {
        let readers: [ShardReader]
        do { readers = try shardPaths([path]).map { p throws(ShardError) in try ShardReader(path: p) } } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        guard let first = readers.first else { throw ValidationError("\(path): no shard found") }
        var tokens: UInt64 = 0
        for r in readers {
            let (sum, overflow) = tokens.addingReportingOverflow(r.metadata.tokenCount)
            guard !overflow else {
                printError("error: \(r.path): token_count \(r.metadata.tokenCount) brings the total past 2^64 tokens")
                throw ExitCode(1)
            }
            tokens = sum
        }
        let compressed = readers.reduce(UInt64(0)) { $0 + $1.metadata.compressedBytes }
        let frames = readers.reduce(0) { $0 + $1.metadata.frameCount }
        var lengths: [UInt64] = []
        for r in readers {
            var previous: UInt64 = 0
            let ends: [UInt64]
            do { ends = try r.allDocumentEnds() } catch {
                printError("error: \(error)")
                throw ExitCode(1)
            }
            for end in ends { lengths.append(end - previous); previous = end }
        }
        lengths.sort()
        let raw = tokens.multipliedReportingOverflow(by: UInt64(first.metadata.tokenWidth.bytes)).partialValue
        func row(_ k: String, _ v: String) { print(k.padding(toLength: 14, withPad: " ", startingAt: 0) + v) }
        row("path", path + (readers.count > 1 ? " (\(readers.count) shards)" : ""))
        row("format", "tokenfeed shard v" + Set(readers.map { String($0.metadata.formatVersion) }).sorted().joined(separator: ", v"))
        row("tokenizer", Set(readers.map(\.metadata.tokenizerName)).sorted().joined(separator: ", "))
        row("dtype", first.metadata.tokenWidth.description)
        row("vocabulary", grouped(UInt64(first.metadata.vocabularySize)))
        row("tokens", grouped(tokens))
        row("documents", grouped(UInt64(lengths.count)))
        row("frames", "\(grouped(UInt64(frames))) (\(grouped(UInt64(first.metadata.tokensPerFrame))) tokens per frame)")
        row("size", "\(grouped(compressed)) bytes compressed, \(grouped(raw)) raw, ratio \(String(format: "%.2f", Double(raw) / Double(max(compressed, 1))))×")
        guard !lengths.isEmpty else { return }
        func q(_ p: Double) -> UInt64 { lengths[min(lengths.count - 1, Int(p * Double(lengths.count)))] }
        let mean = Double(tokens) / Double(lengths.count)
        row("doc length", "min \(lengths[0])  p10 \(q(0.1))  median \(q(0.5))  p90 \(q(0.9))  p99 \(q(0.99))  max \(lengths.last!)  mean \(String(format: "%.1f", mean))")
        // Log2 histogram of document lengths.
        var buckets: [Int: Int] = [:]
        for l in lengths { buckets[63 - l.leadingZeroBitCount, default: 0] += 1 }
        let top = buckets.values.max() ?? 1
        for b in buckets.keys.sorted() {
            let label = "\(1 << b)–\((1 << (b + 1)) - 1)"
            let bar = String(repeating: "█", count: max(1, buckets[b]! * 40 / top))
            print("  " + label.padding(toLength: 18, withPad: " ", startingAt: 0) + bar + " \(buckets[b]!)")
        }
    }
}
