import Foundation

/// `MANIFEST.json`, the record of an export: what was asked (``Parameters``, fixed when the export
/// starts), and each file group completed so far with the sequences it holds. It is rewritten
/// (atomically) after every completed file, so it always lists exactly the files that are complete;
/// `--resume` redoes any other.
struct ExportManifest: Codable, Equatable {
    static let formatName = "tokenfeed-export-1"
    static let fileName = "MANIFEST.json"

    /// What determines the files' bytes. `--resume` continues only an export with the same ones.
    struct Parameters: Codable, Equatable {
        /// The curriculum file as given.
        var curriculum: String
        /// The stream fingerprint (hex), over the curriculum and every shard it reads.
        var fingerprint: String
        /// The range as given, and the global sequences it resolved to.
        var range: String
        var firstSequence: UInt64
        var endSequence: UInt64
        var sequenceLength: Int
        var format: String
        var documents: Bool
        var sequencesPerFile: UInt64
        var tokenWidth: Int
        var tokenizer: String?
        var tokensPerFrame: Int
        var level: Int32
    }

    /// One completed file group (a chunk).
    struct FileGroup: Codable, Equatable {
        /// The group's files, the last renamed last.
        var files: [String]
        var firstSequence: UInt64
        var endSequence: UInt64
        var sequences: UInt64
        var documents: UInt64
        var tokens: UInt64
    }

    var format = Self.formatName
    var parameters: Parameters
    var complete = false
    var groups: [FileGroup] = []

    func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        // Encoding plain integers, strings and booleans cannot fail.
        return Array((try? encoder.encode(self)) ?? Data()) + [0x0A]
    }

    /// Reads a manifest.
    /// - Throws: `ExportError` naming the file when it is missing or is not a manifest.
    static func read(_ path: String) throws(ExportError) -> ExportManifest {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ExportError("\(path): cannot read (no export to resume here)")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let manifest: ExportManifest
        do { manifest = try decoder.decode(ExportManifest.self, from: data) } catch {
            throw ExportError("\(path): not a tokenfeed export manifest: \(error)")
        }
        guard manifest.format == formatName else {
            throw ExportError("\(path): format '\(manifest.format)', this build reads '\(formatName)'")
        }
        return manifest
    }

    /// The first parameter that differs, as "name: was X, now Y", or nil.
    static func difference(_ a: Parameters, _ b: Parameters) -> String? {
        let pairs: [(String, String, String)] = [
            ("curriculum", a.curriculum, b.curriculum), ("fingerprint", a.fingerprint, b.fingerprint),
            ("range", a.range, b.range), ("first sequence", "\(a.firstSequence)", "\(b.firstSequence)"),
            ("end sequence", "\(a.endSequence)", "\(b.endSequence)"), ("sequence length", "\(a.sequenceLength)", "\(b.sequenceLength)"),
            ("format", a.format, b.format), ("documents", "\(a.documents)", "\(b.documents)"),
            ("sequences per file", "\(a.sequencesPerFile)", "\(b.sequencesPerFile)"),
            ("token width", "\(a.tokenWidth)", "\(b.tokenWidth)"), ("tokenizer", a.tokenizer ?? "unknown", b.tokenizer ?? "unknown"),
            ("tokens per frame", "\(a.tokensPerFrame)", "\(b.tokensPerFrame)"), ("level", "\(a.level)", "\(b.level)"),
        ]
        return pairs.first { $0.1 != $0.2 }.map { "\($0.0): was \($0.1), now \($0.2)" }
    }
}
