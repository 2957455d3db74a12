import Foundation
import Testing
import TokenfeedCurriculum

/// Every file in `fixtures/curricula/bad/` is rejected, and with exactly the diagnostics its
/// `# expect: LINE:COLUMN: words` comments announce (file, line, column, and a phrase of the
/// message) — all of a file's problems, not only the first.
@Suite struct MalformedCurriculumTests {
    static let folder = Fixtures.path("curricula/bad")
    static let files: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
        .filter { $0.hasSuffix(".yaml") && !$0.hasPrefix("list-part") }.sorted()

    struct Expectation: CustomStringConvertible {
        var line: Int, column: Int, phrase: String
        var description: String { "\(line):\(column): \(phrase)" }
    }

    static func expectations(in path: String) -> [Expectation] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let range = line.range(of: "# expect: ") else { return nil }
            let parts = line[range.upperBound...].split(separator: ":", maxSplits: 2)
            guard parts.count == 3, let l = Int(parts[0]), let c = Int(parts[1]) else { return nil }
            return Expectation(line: l, column: c, phrase: parts[2].trimmingCharacters(in: .whitespaces))
        }
    }

    @Test func thereAreMalformedFixtures() {
        #expect(Self.files.count >= 8)
    }

    @Test(arguments: files)
    func isRejectedWithTheAnnouncedDiagnostics(file: String) {
        let path = Self.folder + "/" + file
        let expected = Self.expectations(in: path)
        #expect(!expected.isEmpty, "\(file) announces no '# expect:' diagnostics")
        do {
            let curriculum = try CurriculumLoader.load(path: path, dataRoot: nil)
            Issue.record("\(file) was accepted: \(curriculum.stages.count) stages")
        } catch {
            let got = error.diagnostics
            for e in got { #expect(e.file.hasSuffix(".yaml"), "\(e)") }
            for want in expected {
                let match = got.contains { $0.line == want.line && $0.column == want.column && $0.message.contains(want.phrase) }
                #expect(match, "\(file): expected \(want); got:\n\(error)")
            }
            #expect(got.count == expected.count, "\(file): \(got.count) diagnostics, \(expected.count) expected; got:\n\(error)")
        }
    }
}
