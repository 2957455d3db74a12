import Foundation

/// Paths into the repository's `fixtures/` folder, resolved from this file's location.
enum Fixtures {
    /// The repository root.
    static let repository: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// `fixtures/<relative>`.
    static func path(_ relative: String) -> String { repository + "/fixtures/" + relative }

    /// The SmolLM3 stage 3 nanotron config (three stages).
    static let smolLM3Stage3 = path("curricula/smollm3/stage3_9T_11T.yaml")
}

/// A fresh temporary folder, removed by the caller with `removeTemporaryFolder`.
func makeTemporaryFolder() -> String {
    let path = NSTemporaryDirectory() + "tokenfeed-curriculum-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func removeTemporaryFolder(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

/// Writes `text` to `folder/name` and returns the path.
@discardableResult
func write(_ text: String, to folder: String, _ name: String) -> String {
    let path = folder + "/" + name
    try! FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try! text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}
