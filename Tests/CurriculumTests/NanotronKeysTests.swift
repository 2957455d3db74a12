import Foundation
import Testing
import TokenfeedCurriculum

/// nanotron keys that change the data are honoured or refused with file:line:col, never ignored
/// (issue 10.6).
@Suite struct NanotronKeysTests {
    /// A one-stage nanotron config whose `data.dataset` has `options` (one `key: value` a line) and
    /// whose `general` has `general`.
    func config(_ options: [String], general: String = "seed: 6", dataSeed: String = "6") -> String {
        """
        general: {\(general)}
        parallelism: {dp: 1}
        tokens: {sequence_length: 16, micro_batch_size: 1, batch_accumulation_per_replica: 1, train_steps: 20}
        data_stages:
        - name: one
          start_training_step: 1
          data:
            seed: \(dataSeed)
            dataset:
              dataset_folder: [s3://b/web]
              dataset_weights: [1]

        """ + options.map { "      \($0)\n" }.joined()
    }

    func errors(_ text: String) -> [String] {
        do {
            _ = try CurriculumLoader.load(text: text, path: "/c/n.yaml", dataRoot: nil)
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    @Test func smolLM3sValuesAreAccepted() throws {
        let text = config(["pad_samples_to_global_batch_size: false", "return_positions: true", "token_size_in_bytes: 4",
                           "tokenizer_name: meta-llama/Llama-3.2-1B", "use_old_brrr_dataloader: false", "vocab_size: 128256",
                           "shuffle_files: false", "skip_in_stream: false", "dataset_max_tokens: null"])
        let curriculum = try CurriculumLoader.load(text: text, path: "/c/n.yaml", dataRoot: nil)
        let declared = curriculum.stages[0].declaredFormat
        #expect(declared.tokenBytes?.value == 4 && declared.tokenBytes?.location.line == 14)
        #expect(declared.tokenizer?.value == "meta-llama/Llama-3.2-1B")
        #expect(declared.vocabularySize?.value == 128_256)
        // The official files load (their options are these).
        for file in ["stage1_8T", "stage2_8T_9T", "stage3_9T_11T", "long_context_4k_to_32k", "long_context_32k_to_64"] {
            #expect(throws: Never.self) { try CurriculumLoader.load(path: Fixtures.path("curricula/smollm3/\(file).yaml"), dataRoot: nil) }
        }
    }

    @Test(arguments: [
        ("shuffle_files: true", "'shuffle_files: true' is not supported"),
        ("pad_samples_to_global_batch_size: true", "'pad_samples_to_global_batch_size: true' is not supported"),
        ("use_old_brrr_dataloader: true", "'use_old_brrr_dataloader: true' is not supported"),
        ("skip_in_stream: true", "'skip_in_stream: true' is not supported"),
        ("return_positions: false", "'return_positions: false' is not supported"),
        ("dataset_max_tokens: [1000000]", "'dataset_max_tokens' is not supported"),
        ("token_size_in_bytes: 3", "'token_size_in_bytes' is 3; datatrove and tokenfeed shards hold 2- or 4-byte tokens"),
        ("shuffle_files: maybe", "'shuffle_files' must be true or false, not 'maybe'"),
    ])
    func refusedValuesNameTheirPlace(option: String, message: String) {
        let errors = errors(config([option]))
        let column = option.firstIndex(of: ":").map { option.distance(from: option.startIndex, to: $0) } ?? 0
        #expect(errors.count == 1, "\(errors)")
        #expect(errors.first?.hasPrefix("/c/n.yaml:12:\(7 + column + 2): error: \(message)") == true, "\(errors)")
    }

    @Test func aStageSeedOtherThanTheRunsIsRefused() {
        #expect(errors(config([], dataSeed: "7")) == ["/c/n.yaml:8:11: error: stage 'one' has data.seed 7, but the run's seed is 6 (general.seed); tokenfeed uses one seed for every stage: make them equal"])
        #expect(errors(config([], general: "seed: null", dataSeed: "7")).isEmpty)
    }

    @Test func trainingStateInGeneralIsRefused() {
        let errors = errors(config([], general: "seed: 6, consumed_train_samples: 1000, step: 5"))
        #expect(errors.count == 2)
        #expect(errors.allSatisfy { $0.hasPrefix("/c/n.yaml:1:") && $0.contains("is not supported: tokenfeed starts a run at its first sequence and resumes from a cursor") })
    }
}
