#!/usr/bin/env bash
# Padding fraction of `bestfit` packing on the real corpus fixture (fixtures/corpus/llama3-text, Llama-3
# tokens), measured end to end: the fixture is imported with `tokenfeed shard import`, then for each
# sequence length and look-ahead a one-dataset curriculum is dumped with `tokenfeed dump --offline --json`
# over one whole epoch, and the loss-mask zeros are summed. Prints a Markdown table.
#
#   bench/padding.sh                          # release build
#   TOKENFEED_BUILD=debug bench/padding.sh    # debug build (same figures: they depend on the data only)
#
# Also checks, from the dumped provenance, that the epoch's rows hold every document token exactly once.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${TOKENFEED_BUILD:-release}"
swift build -c "$config" --product tokenfeed >&2
bin="$(swift build -c "$config" --show-bin-path)/tokenfeed"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$bin" shard import --from datatrove fixtures/corpus/llama3-text --out "$work/data/llama3-text" \
  --tokens-per-frame 65536 --vocab-size 128256 >&2
read -r tokens documents < <(python3 -c '
import glob, os
ends = [os.path.getsize(f) // 8 for f in glob.glob("fixtures/corpus/llama3-text/*.ds.index")]
tokens = sum(os.path.getsize(f) // 4 for f in glob.glob("fixtures/corpus/llama3-text/*.ds"))
print(tokens, sum(ends))')

echo "| sequence length | look-ahead | rows | padding tokens | padding fraction |"
echo "|---:|---:|---:|---:|---:|"
for length in 1024 2048 4096; do
  for lookahead in 1 64 1024; do
    curriculum="$work/bestfit-$length-$lookahead.yaml"
    cat > "$curriculum" <<YAML
sequence_length: $length
seed: 0
packing: {mode: bestfit, pad_token: 128004, lookahead: $lookahead}
stages:
  - name: all
    start: 0
    end: $(( 4 * tokens ))
    mixture:
      llama3-text: 1
YAML
    # One epoch has at most one row per started row of each document: tokens / L + documents.
    count=$(( tokens / length + documents + 1 ))
    "$bin" dump --offline "$curriculum" --data-root "$work/data" --count "$count" --json |
      python3 -c '
import json, sys
length, lookahead, tokens = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rows = padded = served = 0
wrapped = False
for line in sys.stdin:              # read everything: the dump must not die of a broken pipe
    row = json.loads(line)
    if wrapped or row["epoch"] != 0:
        wrapped = True
        continue
    rows += 1
    padded += row.get("loss_mask", []).count(0)
    served += sum(piece["length"] for piece in row["provenance"])
    assert len(row["tokens"]) == length + 1
if not wrapped:
    sys.exit("the dump ended inside epoch 0: raise --count")
assert served == tokens, f"epoch 0 served {served} document tokens, the corpus has {tokens}"
assert rows * (length + 1) == served + padded
print(f"| {length} | {lookahead} | {rows} | {padded} | {100 * padded / (rows * (length + 1)):.2f} % |")
' "$length" "$lookahead" "$tokens"
  done
done
