/// The options of a nanotron stage's `data.dataset` besides its lists of folders and weights, each
/// honoured with nanotron's meaning or refused where its value would change the data in a way
/// tokenfeed does not reproduce (docs/CURRICULUM.md, "nanotron keys"):
///
/// | key | accepted | refused |
/// |---|---|---|
/// | `token_size_in_bytes`, `tokenizer_name`, `vocab_size` | checked against the shards | a mismatch (when the stream opens) |
/// | `return_positions` | `true`, null: position ids restart after every document's EOS, as tokenfeed serves them | `false` |
/// | `dataset_max_tokens` | null | a list (a cap on the tokens read from each folder) |
/// | `shuffle_files` | `false`, null | `true` (a seeded file order) |
/// | `pad_samples_to_global_batch_size` | `false`, null | `true` |
/// | `use_old_brrr_dataloader` | `false`, null | `true` (another dataset class) |
/// | `skip_in_stream` | `false`, null | `true` |
enum NanotronDatasetOptions {
    /// Reads the options of one stage's `data.dataset`, reporting refused values at their
    /// `file:line:col`, and returns what it declares about the shards.
    static func read(_ dataset: MappingReader, stage name: String, _ diagnostics: inout Diagnostics) -> DeclaredShardFormat {
        var declared = DeclaredShardFormat()
        if let node = dataset.value("token_size_in_bytes"), !node.isNull,
           let bytes = diagnostics.integer(node, "'token_size_in_bytes'", in: 1...8) {
            if bytes == 2 || bytes == 4 {
                declared.tokenBytes = Declared(Int(bytes), at: node.location)
            } else {
                diagnostics.error(node.location, "'token_size_in_bytes' is \(bytes); datatrove and tokenfeed shards hold 2- or 4-byte tokens")
            }
        }
        if let node = dataset.value("tokenizer_name"), !node.isNull, let text = diagnostics.string(node, "'tokenizer_name'") {
            declared.tokenizer = Declared(text, at: node.location)
        }
        if let node = dataset.value("vocab_size"), !node.isNull,
           let size = diagnostics.integer(node, "'vocab_size'", in: 1...UInt64(UInt32.max)) {
            declared.vocabularySize = Declared(size, at: node.location)
        }
        if let node = dataset.value("return_positions"), !node.isNull,
           diagnostics.boolean(node, "'return_positions'") == false {
            diagnostics.error(node.location, "'return_positions: false' is not supported: tokenfeed always serves position ids that restart after every document's EOS (nanotron's 'true'); remove the key, or have the trainer ignore batch.position_ids")
        }
        if let node = dataset.value("dataset_max_tokens"), !node.isNull {
            diagnostics.error(node.location, "'dataset_max_tokens' is not supported: tokenfeed reads every token of a dataset's shards (nanotron caps the tokens read from each folder); leave it null, and give each dataset only the shards it should read")
        }
        refuseTrue("shuffle_files", in: dataset, "tokenfeed reads shards in file-name order in the first epoch (nanotron would shuffle its files with the seed); leave it false, or use tokenfeed's own 'shuffle' (docs/CURRICULUM.md, \"Shuffling\")", &diagnostics)
        refuseTrue("pad_samples_to_global_batch_size", in: dataset, "tokenfeed's stream never ends in a partial batch, so there is nothing to pad (nanotron would pad its last global batch); leave it false", &diagnostics)
        refuseTrue("use_old_brrr_dataloader", in: dataset, "tokenfeed reads datasets as nanotron's current loader does (windows of the concatenated documents), not as the old TokenizedBytes loader; leave it false", &diagnostics)
        refuseTrue("skip_in_stream", in: dataset, "tokenfeed jumps to any position directly; leave it false", &diagnostics)
        return declared
    }

    static func refuseTrue(_ key: String, in dataset: MappingReader, _ reason: String, _ diagnostics: inout Diagnostics) {
        guard let node = dataset.value(key), !node.isNull, diagnostics.boolean(node, "'\(key)'") == true else { return }
        diagnostics.error(node.location, "'\(key): true' is not supported: \(reason)")
    }
}
