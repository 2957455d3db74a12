#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import TokenfeedEngine
import TokenfeedMixing
import TokenfeedSystem

/// Where a job's files live in the state directory (docs/OPERATIONS.md, "State directory"):
/// `<state-dir>/jobs/<folder name of the job id>/rank-<R>.cursor` and `…/stats.json`, so that jobs
/// served by one daemon never overwrite each other's cursors.
///
/// Job ids are chosen by clients, so the folder name is an injective, path-safe encoding of the id
/// (``folderName(of:)``): no `/`, no `.`/`..`, no control bytes, at most 255 bytes.
public enum JobStateFiles {
    /// The folder, under the state directory, that holds one folder per job.
    public static let jobsFolder = "jobs"

    /// The folder name of `jobID`: bytes `A–Z a–z 0–9 - _ .` are kept, every other UTF-8 byte (and a
    /// leading `.` or `_`) is written `%XX` (upper-case hex); the empty id (clients that send none) is `_`.
    /// Distinct ids give distinct names (the encoding is reversible: ``jobID(ofFolder:)``), and no name
    /// is `.`, `..` or holds a `/`. A job id is at most 256 bytes (``Hello/maxJobIDBytes``), so a name
    /// can reach 768 bytes; one longer than 255 (the file-name limit) keeps its first 230 bytes and
    /// appends `~` and a 64-bit hash of the whole id (`~` never appears otherwise).
    public static func folderName(of jobID: String) -> String {
        if jobID.isEmpty { return "_" }
        var out: [UInt8] = []
        out.reserveCapacity(jobID.utf8.count)
        for (i, byte) in jobID.utf8.enumerated() {
            let plain = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2D || ((byte == 0x2E || byte == 0x5F) && i > 0)
            if plain {
                out.append(byte)
            } else {
                out += Array(("%" + Hex.padded(byte, uppercase: true)).utf8)
            }
        }
        if out.count > 255 {
            out = Array(out.prefix(230)) + Array(("~" + Hex.padded(FNV1a64.hash(jobID))).utf8)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The job id a folder name encodes (the inverse of ``folderName(of:)``), or nil for a name it
    /// never produces (a hashed long name, a bad escape).
    public static func jobID(ofFolder name: String) -> String? {
        if name == "_" { return "" }
        guard !name.contains("~") else { return nil }
        var bytes: [UInt8] = []
        var utf8 = Array(name.utf8)[...]
        while let byte = utf8.popFirst() {
            guard byte == 0x25 else { bytes.append(byte); continue }
            guard utf8.count >= 2, let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) else { return nil }
            bytes.append(value)
            utf8 = utf8.dropFirst(2)
        }
        let id = String(decoding: bytes, as: UTF8.self)
        return folderName(of: id) == name ? id : nil
    }

    /// `<stateDirectory>/jobs/<folder>` for `jobID`.
    public static func folder(stateDirectory: String, jobID: String) -> String {
        "\(stateDirectory)/\(jobsFolder)/\(folderName(of: jobID))"
    }

    /// The path of rank `rank`'s cursor of job `jobID`.
    public static func cursorPath(stateDirectory: String, jobID: String, rank: UInt32) -> String {
        "\(folder(stateDirectory: stateDirectory, jobID: jobID))/rank-\(rank).cursor"
    }

    /// The path of job `jobID`'s `stats.json`.
    public static func statsPath(stateDirectory: String, jobID: String) -> String {
        "\(folder(stateDirectory: stateDirectory, jobID: jobID))/stats.json"
    }

    /// Creates `<stateDirectory>/jobs/<folder>` (mode 0755) where missing.
    /// - Throws: `SystemCallError` naming `mkdir` and the path.
    static func createFolder(stateDirectory: String, jobID: String) throws(SystemCallError) {
        for path in ["\(stateDirectory)/\(jobsFolder)", folder(stateDirectory: stateDirectory, jobID: jobID)] {
            do { try createDirectory(path) } catch { throw SystemCallError("mkdir \(path)", errno: error) }
        }
    }

    /// The `rank-R.cursor` files an older daemon kept at the top of the state directory (one per rank,
    /// whatever the job), sorted; they are left where they are and no longer written.
    static func legacyCursorFiles(stateDirectory: String) -> [String] {
        guard let dir = opendir(stateDirectory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix("rank-"), name.hasSuffix(".cursor") { names.append(name) }
        }
        return names.sorted()
    }
}
