import Foundation
import Testing
import TestSupport
import TokenfeedClient
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedProtocol
@testable import TokenfeedServer

/// Stage files used one after another (issue 10.2): a cursor made under a curriculum resumes under
/// one that keeps its stages and appends more, with the bytes of an uninterrupted run; a cursor past
/// a changed stage, or under a changed stage, is refused with the difference named.
@Suite struct CursorCompatibilityTests {
    static let tokenfeed = productsFolder + "/tokenfeed"

    // MARK: SmolLM3's three official stage files

    /// The datasets of all three files, one small shard each, under `dir/data` (in the folder each is read from).
    static func smolLM3DataRoot(_ dir: TemporaryDirectory, files: [String]) throws -> String {
        var folders = Set<String>()
        for file in files {
            folders.formUnion(try CurriculumLoader.load(path: file, dataRoot: dir.sub("data"), requireFolders: false).datasets.compactMap(\.folder))
        }
        for (d, folder) in folders.sorted().enumerated() {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let docs = SyntheticCorpus.documents(seed: UInt64(d), count: 5, vocabulary: 128_256, meanLength: 300)
            try SyntheticCorpus.writeShard(docs, path: folder + "/0.zst", vocabulary: 128_256, tokensPerFrame: 512)
        }
        return dir.sub("data")
    }

    @Test func smolLM3StageFilesShareTheirPrefixes() throws {
        let dir = TemporaryDirectory("tokenfeed-stagefiles")
        let files = ["stage1_8T", "stage2_8T_9T", "stage3_9T_11T"].map { Fixtures.path("curricula/smollm3/\($0).yaml") }
        let root = try Self.smolLM3DataRoot(dir, files: files)
        let streams = try files.map { try GlobalStream(curriculum: try CurriculumLoader.load(path: $0, dataRoot: root)) }
        let descriptions = streams.map { StreamDescription(stream: $0) }
        #expect(descriptions.map(\.stages.count) == [1, 2, 3])
        // Each file is the next one cut after its stages.
        #expect(descriptions[1].prefixFingerprint(stages: 1) == descriptions[0].fingerprint)
        #expect(descriptions[2].prefixFingerprint(stages: 1) == descriptions[0].fingerprint)
        #expect(descriptions[2].prefixFingerprint(stages: 2) == descriptions[1].fingerprint)
        #expect(Set(descriptions.map(\.fingerprint)).count == 3)

        // nanotron's shape: 576 sequences a step; stage 2 starts at step 3,450,000 (0-based), stage 3 at 4,198,000.
        let gbs: UInt64 = 576
        let stage2 = streams[2].plan.firstSequence(ofStage: 1), stage3 = streams[2].plan.firstSequence(ofStage: 2)
        #expect(stage2 == 3_450_000 * gbs && stage3 == 4_198_000 * gbs)
        func verdict(_ from: Int, _ to: Int, step: UInt64) -> CursorCompatibility {
            CursorCompatibility.check(fingerprint: descriptions[from].fingerprint, nextSequence: step * gbs,
                                      served: descriptions[to], plan: streams[to].plan)
        }
        #expect(verdict(0, 1, step: 3_450_000) == .prefix(sharedStages: 1, agreesBefore: stage2))
        #expect(verdict(0, 2, step: 3_450_000) == .prefix(sharedStages: 1, agreesBefore: stage2))
        #expect(verdict(1, 2, step: 4_198_000) == .prefix(sharedStages: 2, agreesBefore: stage3))
        #expect(verdict(1, 2, step: 3_000_000) == .prefix(sharedStages: 2, agreesBefore: stage3))
        #expect(verdict(2, 2, step: 4_500_000) == .same)
        // A stage-1 cursor past stage 2's start: its stream was still in stage 1 there.
        guard case .incompatible(let reason) = verdict(0, 2, step: 3_450_001) else { Issue.record("accepted"); return }
        #expect(reason.contains("stage 2 ('stable stage 2')") && reason.contains("sequence \(stage2)"), "\(reason)")
        // Backwards (a longer stream's cursor on a shorter one) is not accepted either.
        guard case .incompatible = verdict(2, 0, step: 10) else { Issue.record("accepted"); return }

        // The property the check stands on: the same rows before the boundary, under every file.
        let slice = RankSlice(rank: 191, worldSize: 192, batchSize: 3)
        for step in [UInt64(0), 3_449_999] {
            let rows = try streams.map { try Self.tokens(of: $0, step: step, slice: slice) }
            #expect(rows[0] == rows[1] && rows[1] == rows[2], "step \(step)")
        }
        let atStage2 = try streams.map { try Self.tokens(of: $0, step: 4_197_999, slice: slice) }
        #expect(atStage2[1] == atStage2[2] && atStage2[0] != atStage2[1])
    }

    static func tokens(of stream: GlobalStream, step: UInt64, slice: RankSlice) throws -> [UInt32] {
        var assembler = BatchAssembler(stream: stream, slice: slice)
        let block = UnsafeMutableRawBufferPointer.allocate(byteCount: assembler.tokenBlockBytes, alignment: 64)
        defer { block.deallocate() }
        try assembler.assemble(step: step, into: block, frames: DirectFrameProvider(stream: stream))
        return (0 ..< assembler.tokenBlockBytes / 4).map { block.load(fromByteOffset: $0 * 4, as: UInt32.self) }
    }

    // MARK: a real daemon, restarted on the next stage file

    /// The fixture's curriculum without its last stage (`middle` runs to the end), and with a changed weight.
    static func writeVariants(_ fixture: ServerFixture) throws -> (short: String, changed: String) {
        func yaml(_ warmup: String) -> String {
            """
            sequence_length: \(fixture.sequenceLength)
            seed: 11
            stages:
              - name: warmup
                start: 0
                end: 640
                mixture: {\(warmup)}
              - name: middle
                start: 640
                end: 200K
                mixture: {web: 0.5, code: 0.25, tiny: 0.25}

            """
        }
        let short = fixture.dir.sub("short.yaml"), changed = fixture.dir.sub("changed.yaml")
        try yaml("web: 0.7, code: 0.3").write(toFile: short, atomically: true, encoding: .utf8)
        try yaml("web: 0.6, code: 0.4").write(toFile: changed, atomically: true, encoding: .utf8)
        return (short, changed)
    }

    @Test func aDaemonOnTheNextStageFileResumesACursorExactly() throws {
        let fixture = try ServerFixture()
        let (short, changed) = try Self.writeVariants(fixture)
        let state = fixture.dir.sub("state")
        func serve(_ curriculum: String) throws -> Server {
            var options = fixture.options()
            options.curriculumPath = curriculum
            options.stateDirectory = state
            return try fixture.startServer(options)
        }
        // W = 1, B = 2: stage 'last' of the full curriculum starts at sequence 32, step 16.
        var first = try serve(short)
        let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2)
        _ = try client.rows(batches: 10)
        let atTen = client.cursor
        _ = try client.rows(batches: 7)
        let atSeventeen = client.cursor
        client.close()
        first.shutdown()
        #expect(atTen.nextStep == 10 && atSeventeen.nextStep == 17)

        first = try serve(changed)
        let changedClient = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2)
        _ = try changedClient.rows(batches: 3)
        let changedCursor = changedClient.cursor
        changedClient.close()
        first.shutdown()

        let server = try serve(fixture.curriculumPath)
        defer { server.shutdown() }
        let resumed = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2, cursor: atTen)
        let rows = try resumed.rows(batches: 10)
        resumed.close()
        let slice = RankSlice(rank: 0, worldSize: 1, batchSize: 2)
        let expected = try (10 ..< 20).flatMap { try fixture.reference(step: UInt64($0), slice: slice).tokens }
        #expect(rows.map(\.tokens) == expected, "steps 10..<20 after the restart are the uninterrupted run's")
        #expect(rows.first?.step == 10 && rows.last?.stage == 2)

        // Past the appended stage's start: refused, naming the stage.
        #expect {
            _ = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2, cursor: atSeventeen)
        } throws: { error in
            guard let error = error as? ClientError, error.kind == .daemonError, error.code == .cursorFingerprintMismatch else { return false }
            return error.message.contains("stage 3 ('last')") && error.message.contains("sequence 32")
        }
        // Under a changed stage: refused, naming the first difference (the state directory recorded that stream).
        #expect {
            _ = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2, cursor: changedCursor)
        } throws: { error in
            guard let error = error as? ClientError, error.code == .cursorFingerprintMismatch else { return false }
            return error.message.contains("stage 1 ('warmup') start and mixture") && error.message.contains("web=") && error.message.contains("first difference")
        }
    }

    @Test func cursorCheckAnswersCompatibleOrNamesTheDifference() throws {
        let fixture = try ServerFixture()
        let (short, changed) = try Self.writeVariants(fixture)
        func cursor(_ curriculum: String, step: UInt64) throws -> String {
            let stream = try GlobalStream(curriculum: try CurriculumLoader.load(path: curriculum, dataRoot: fixture.dataRoot))
            return Cursor(fingerprint: StreamFingerprint.value(of: stream), nextStep: step, worldSize: 1, batchSize: 2).text
        }
        let base = ["cursor", "check", "--curriculum", fixture.curriculumPath, "--data-root", fixture.dataRoot]
        let ok = try run(Self.tokenfeed, base + ["--cursor", try cursor(short, step: 10)])
        #expect(ok.status == 0)
        #expect(String(decoding: ok.stdout, as: UTF8.self).hasPrefix("compatible up to sequence 32"))

        let file = fixture.dir.sub("cursor.txt")
        try (try cursor(short, step: 17) + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let late = try run(Self.tokenfeed, base + ["--cursor", file])
        #expect(late.status == 1)
        #expect(String(decoding: late.stdout, as: UTF8.self).contains("stage 3 ('last')"))

        let other = try run(Self.tokenfeed, base + ["--cursor", try cursor(changed, step: 3), "--previous", changed])
        let text = String(decoding: other.stdout, as: UTF8.self)
        #expect(other.status == 1)
        #expect(text.contains("stage 1 ('warmup') start and mixture") && text.contains("web=") , "\(text)")

        let same = try run(Self.tokenfeed, base + ["--cursor", try cursor(fixture.curriculumPath, step: 40)])
        #expect(same.status == 0 && String(decoding: same.stdout, as: UTF8.self).hasPrefix("compatible: the cursor was made for this very stream"))
    }
}
