import Testing
import TokenfeedServer

/// Job ids are chosen by clients: their folder names in the state directory must be safe and distinct.
@Suite struct JobStateFilesTests {
    @Test func folderNamesAreSafeAndReversible() {
        let ids = ["", "_", "__", ".", "..", "../etc", "a/b", "a%2Fb", "a b", "job-7", "Job_7.v2", "_x", ".hidden", "~", "x~y",
                   "ä", "\u{0}", "\n", "%", "%25", "a..b", String(repeating: "x", count: 256), String(repeating: "/", count: 256)]
        var seen: [String: String] = [:]
        for id in ids {
            let name = JobStateFiles.folderName(of: id)
            #expect(!name.isEmpty && name != "." && name != "..", "\(id.debugDescription) → \(name)")
            #expect(!name.contains("/") && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "\(id.debugDescription) → \(name)")
            #expect(name.utf8.count <= 255)
            #expect(seen[name] == nil, "\(id.debugDescription) and \(seen[name].debugDescription) share \(name)")
            seen[name] = id
            if name.utf8.count < 230 { #expect(JobStateFiles.jobID(ofFolder: name) == id) }
        }
        #expect(JobStateFiles.folderName(of: "") == "_")
        #expect(JobStateFiles.folderName(of: "../etc") == "%2E.%2Fetc")
        #expect(JobStateFiles.folderName(of: "job-7") == "job-7")
        #expect(JobStateFiles.folderName(of: "a b") == "a%20b")
        #expect(JobStateFiles.jobID(ofFolder: "a%2") == nil && JobStateFiles.jobID(ofFolder: "a%2f") == nil)
    }

    @Test func paths() {
        #expect(JobStateFiles.cursorPath(stateDirectory: "/var/lib/tokenfeed", jobID: "run/1", rank: 3) == "/var/lib/tokenfeed/jobs/run%2F1/rank-3.cursor")
        #expect(JobStateFiles.statsPath(stateDirectory: "/s", jobID: "") == "/s/jobs/_/stats.json")
    }
}
