import Foundation
import Testing
import TestSupport
import TokenfeedCurriculum
import TokenfeedEngine
@testable import TokenfeedServer

/// A nanotron config's `token_size_in_bytes`, `tokenizer_name` and `vocab_size` are checked against
/// the shards (issue 10.6): the daemon, `plan` and the stream refuse a mismatch at the key's line.
@Suite struct DeclaredShardFormatTests {
    /// A nanotron config over the fixture's `tiny` (uint16 ids, vocabulary 65,536) and `code` (uint32).
    static func config(_ fixture: ServerFixture, _ options: String) throws -> String {
        let path = fixture.dir.sub("nanotron.yaml")
        try """
        general: {seed: 11}
        parallelism: {dp: 1}
        tokens: {sequence_length: 64, micro_batch_size: 2, batch_accumulation_per_replica: 1, train_steps: 50}
        data_stages:
        - name: one
          start_training_step: 1
          data:
            dataset:
              dataset_folder: [s3://b/tiny, s3://b/code]
              dataset_read_path: [/x/tiny, /x/code]
              dataset_weights: [1, 1]
              \(options)

        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func aMismatchIsRefusedByTheDaemonPlanAndStream() throws {
        let fixture = try ServerFixture()
        let cases = [("token_size_in_bytes: 4", "token_size_in_bytes is 4, but the shards of dataset 'tiny'"),
                     ("vocab_size: 50000", "vocab_size is 50000, but the shards of dataset 'tiny'")]
        for (option, message) in cases {
            let path = try Self.config(fixture, option)
            let curriculum = try CurriculumLoader.load(path: path, dataRoot: fixture.dataRoot)
            let column = 7 + option.distance(from: option.startIndex, to: option.firstIndex(of: ":")!) + 2
            #expect { try GlobalStream(curriculum: curriculum) } throws: { ($0 as? EngineError)?.description.hasPrefix("\(path):12:\(column): error: \(message)") == true }
            var options = fixture.options()
            options.curriculumPath = path
            #expect { try fixture.startServer(options) } throws: { "\($0)".contains(message) && "\($0)".contains("\(path):12:") }
            let plan = try run(productsFolder + "/tokenfeed", ["plan", path, "--data-root", fixture.dataRoot])
            #expect(plan.status == 1 && plan.stderr.contains(message) && plan.stderr.contains("\(path):12:"), "\(plan.stderr)")
        }
        // What the shards hold is accepted (mixed widths: no single token size is declared).
        let good = try Self.config(fixture, "vocab_size: 128256")
        let server = try { var o = fixture.options(); o.curriculumPath = good; return try fixture.startServer(o) }()
        server.shutdown()
        let plan = try run(productsFolder + "/tokenfeed", ["plan", good, "--data-root", fixture.dataRoot])
        #expect(plan.status == 0, "\(plan.stderr)")
    }
}
