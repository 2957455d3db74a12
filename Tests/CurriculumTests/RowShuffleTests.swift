import Testing
import TokenfeedCurriculum
import TokenfeedMixing

/// The seeded row shuffle (issue 10.5): a bijection within blocks, keyed, random access.
@Suite struct RowShuffleTests {
    @Test(arguments: [2, 3, 5, 64, 1000, 4097])
    func eachBlockIsPermutedInPlace(span: Int) {
        let shuffle = RowShuffle(span: span, seed: 6)
        let key = RowShuffle.datasetKey(identity: "s3://b/web")
        for block in [UInt64(0), 1, 7, 1 << 40] {
            let base = block * UInt64(span)
            let rows = (0 ..< UInt64(span)).map { shuffle.rowIndex(base + $0, datasetKey: key) }
            #expect(Set(rows) == Set(base ..< base + UInt64(span)), "block \(block)")
        }
    }

    @Test func theOrderDependsOnSeedDatasetAndBlockAndMovesRows() {
        let span = 256
        func order(seed: UInt64, identity: String, block: UInt64) -> [UInt64] {
            let shuffle = RowShuffle(span: span, seed: seed)
            let key = RowShuffle.datasetKey(identity: identity)
            return (0 ..< UInt64(span)).map { shuffle.rowIndex(block * UInt64(span) + $0, datasetKey: key) - block * UInt64(span) }
        }
        let a = order(seed: 6, identity: "web", block: 0)
        #expect(a != Array(0 ..< UInt64(span)))
        #expect(a.enumerated().filter { UInt64($0.offset) == $0.element }.count < span / 8, "most rows move")
        #expect(a == order(seed: 6, identity: "web", block: 0))
        #expect(a != order(seed: 7, identity: "web", block: 0))
        #expect(a != order(seed: 6, identity: "code", block: 0))
        #expect(a != order(seed: 6, identity: "web", block: 1))
    }

    @Test func theCurriculumSaysItAndTheFingerprintCoversIt() throws {
        func load(_ shuffle: String) throws -> Curriculum {
            try CurriculumLoader.load(text: """
            sequence_length: 16
            \(shuffle)
            stages:
              - {name: a, start: 0, end: 1600, mixture: {web: 1}}
            """, path: "/c/s.yaml", dataRoot: nil)
        }
        let off = try load(""), explicitOff = try load("shuffle: off"), on = try load("shuffle: {span: 4096}")
        #expect(off.shuffle == .off && explicitOff.shuffle == .off && on.shuffle == .rows(span: 4096))
        #expect(off.fingerprint == explicitOff.fingerprint && on.fingerprint != off.fingerprint)
        #expect(try load("shuffle: {span: 8}").fingerprint != on.fingerprint)
        for (text, message) in [("shuffle: {span: 1}", "/c/s.yaml:2:17: error: 'shuffle.span' (rows per shuffled block) must be between 2 and 16777216, not 1"),
                                ("shuffle: {rows: 8}", "/c/s.yaml:2:11: error: unknown key 'rows' in 'shuffle'"),
                                ("shuffle: always", "/c/s.yaml:2:10: error: unknown shuffle 'always'; use 'off' or {span: N} (rows per shuffled block)")] {
            do { _ = try load(text); Issue.record("accepted \(text)") } catch {
                #expect((error as? CurriculumErrors)?.diagnostics.contains { $0.description.hasPrefix(message) } == true, "\(error)")
            }
        }
        // nanotron configs are never shuffled.
        #expect(try CurriculumLoader.load(path: Fixtures.smolLM3Stage3, dataRoot: nil).shuffle == .off)
    }
}
