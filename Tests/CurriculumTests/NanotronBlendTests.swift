import Foundation
import Testing
import TestSupport
import TokenfeedCurriculum
import TokenfeedMixing

/// nanotron's blend (issue 10.3's building block) against numpy and a Python transcription of
/// Megatron's `build_blending_indices` loop.
@Suite struct NanotronBlendTests {
    /// Runs Python with numpy on `script`, returning its standard output's lines.
    func python(_ script: String) throws -> [Substring] {
        let result = try run("/usr/bin/env", ["python3", "-c", script])
        #expect(result.status == 0, "\(result.stderr)")
        return String(decoding: result.stdout, as: UTF8.self).split(separator: "\n")
    }

    @Test func weightsAreNormalisedByNumpysPairwiseSum() throws {
        let curriculum = try CurriculumLoader.load(path: Fixtures.smolLM3Stage3, dataRoot: nil)
        for stage in curriculum.stages {
            let written = stage.weights.map(\.written)
            let list = written.map { String($0) }.joined(separator: ",")
            let lines = try python("import numpy as np; w=np.array([\(list)],dtype=np.float64); print(float(np.sum(w)).hex()); print(' '.join(float(x).hex() for x in w/np.sum(w)))")
            #expect(lines.first.map(String.init) == hex(NanotronBlend.numpySum(written)), "stage \(stage.name)")
            #expect(lines.last?.split(separator: " ").map(String.init) == NanotronBlend(written: written).weights.map(hex))
        }
        // Not a sequential sum: the decay stage's differs.
        let decay = curriculum.stages[2].weights.map(\.written)
        #expect(NanotronBlend.numpySum(decay) != decay.reduce(0, +))
    }

    @Test func theFirstSamplesOfEveryStageAreMegatronsGreedyChoices() throws {
        let curriculum = try CurriculumLoader.load(path: Fixtures.smolLM3Stage3, dataRoot: nil)
        let count = 40_000
        for stage in curriculum.stages {
            let list = stage.weights.map { String($0.written) }.joined(separator: ",")
            // Megatron's helpers.cpp loop, transcribed (numpy float64 scalars: no fused multiply-add).
            let lines = try python("""
            import numpy as np
            w = np.array([\(list)], dtype=np.float64); w /= np.sum(w)
            counts = [0] * len(w); out = []
            for j in range(\(count)):
                x = float(max(j, 1)); best = 0; err = float(w[0]) * x - counts[0]
                for d in range(1, len(w)):
                    e = float(w[d]) * x - counts[d]
                    if e > err: best, err = d, e
                out.append(best); counts[best] += 1
            print(' '.join(map(str, out)))
            """)
            let expected = try #require(lines.first).split(separator: " ").map { Int($0)! }
            var blend = NanotronBlend(written: stage.weights.map(\.written), checkpointInterval: 4096)
            let walked = blend.datasets(of: 0 ..< UInt64(count))
            #expect(zip(walked, expected).filter { $0 != $1 }.count == 0, "stage \(stage.name)")
            #expect(walked.count == count)
            // From a later start (a stored checkpoint, then greedy steps): the same choices.
            #expect(blend.datasets(of: 30_001 ..< 30_100) == Array(expected[30_001 ..< 30_100]))
            // Random access from a fresh blend agrees, and the counts are the prefix counts.
            var fresh = NanotronBlend(written: stage.weights.map(\.written), checkpointInterval: 4096)
            for j in [39_999, 8_192, 4_095, 12_345] {
                let source = fresh.source(ofSample: UInt64(j))
                #expect(source.dataset == expected[j])
                #expect(source.sample == UInt64(expected[..<j].filter { $0 == expected[j] }.count))
                let counts = fresh.counts(beforeSample: UInt64(j))
                #expect(counts.reduce(0, +) == UInt64(j))
                #expect(counts[expected[j]] == UInt64(expected[..<j].filter { $0 == expected[j] }.count))
            }
        }
    }

    func hex(_ value: Double) -> String {
        // Python's float.hex(): 0x1.<13 hex digits>p<exp> for normal numbers.
        if value == 0 { return "0x0.0p+0" }
        let exponent = value.exponent
        let fraction = value.significandBitPattern
        var digits = String(fraction, radix: 16)
        digits = String(repeating: "0", count: 13 - digits.count) + digits
        return "0x1.\(digits)p\(exponent >= 0 ? "+" : "")\(exponent)"
    }
}
