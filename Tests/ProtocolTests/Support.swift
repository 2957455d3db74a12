import Foundation
import Testing
import TokenfeedMixing        // SplitMix64, the project's seeded generator
import TokenfeedProtocol

/// Runs `body`, returning the ProtocolError it throws, or nil when it succeeds; any other error
/// type is recorded as a test failure.
func protocolError(_ body: () throws -> Void) -> ProtocolError? {
    do {
        try body()
        return nil
    } catch let error as ProtocolError {
        return error
    } catch {
        Issue.record("threw \(type(of: error)), not ProtocolError: \(error)")
        return nil
    }
}

/// The repository root (this file is Tests/ProtocolTests/Support.swift).
let repositoryRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

let vectorDirectory = repositoryRoot.appendingPathComponent("Tests/ProtocolVectors")

/// The text of a vector file: a comment line, then 16 hex bytes per line.
func hexFileText(title: String, bytes: [UInt8]) -> String {
    var lines = ["# \(title), \(bytes.count) bytes"]
    var i = 0
    while i < bytes.count {
        let end = min(i + 16, bytes.count)
        lines.append(bytes[i..<end].map { String(format: "%02x", $0) }.joined(separator: " "))
        i = end
    }
    return lines.joined(separator: "\n") + "\n"
}

/// Parses a vector file: drops `#` comments, reads hex byte pairs separated by whitespace.
func parseHexFile(_ text: String) -> [UInt8]? {
    var out: [UInt8] = []
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        let data = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        for token in data.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }) {
            guard token.count == 2, let b = UInt8(token, radix: 16) else { return nil }
            out.append(b)
        }
    }
    return out
}

/// A random string of up to `maxBytes` UTF-8 bytes, mixing ASCII and multi-byte characters.
func randomString(_ rng: inout SplitMix64, maxBytes: Int) -> String {
    let alphabet: [Character] = Array("abcXYZ019_-/. é日本🙂")
    var s = ""
    let target = Int.random(in: 0...min(maxBytes, 40), using: &rng)
    while true {
        let c = alphabet.randomElement(using: &rng)!
        if s.utf8.count + c.utf8.count > target { break }
        s.append(c)
    }
    return s
}
