#!/usr/bin/env bash
# Cost of a far jump with `bestfit` packing (docs/PACKING.md, "the cost of a jump"): the time
# `tokenfeed dump --offline --step N` takes to reach a step far into a many-dataset run, cold (every
# shard's rows counted from its metadata) and with the row-count cache (--cache-dir) written by a
# first run. Prints a Markdown table and checks that all runs print the same rows.
#
#   bench/bestfit-jump.sh                          # release build, 56 datasets × 4 shards × 50,000 documents
#   DATASETS=8 SHARDS=2 DOCS=20000 TOKENFEED_BUILD=debug bench/bestfit-jump.sh   # a quick look
#
# The corpus is synthetic: document lengths log-normal (median 40 tokens, σ 1), uint16 ids, written as
# datatrove files and imported with `tokenfeed shard import`. Curriculum: sequence_length 1024,
# bestfit with look-ahead 64, the datasets mixed equally for three epochs; the far step is at 2/3 of it.
set -euo pipefail
cd "$(dirname "$0")/.."
datasets="${DATASETS:-56}"
shards="${SHARDS:-4}"
docs="${DOCS:-50000}"
config="${TOKENFEED_BUILD:-release}"
swift build -c "$config" --product tokenfeed >&2
bin="$(swift build -c "$config" --show-bin-path)/tokenfeed"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for ((d = 0; d < datasets; d++)); do
  python3 - "$work/raw" "$d" "$shards" "$docs" <<'PY'
import os, sys
import numpy as np
root, d, shards, docs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(1000 + d)
folder = f"{root}/ds{d:02d}"
os.makedirs(folder, exist_ok=True)
for s in range(shards):
    lengths = np.maximum(1, rng.lognormal(mean=np.log(40), sigma=1.0, size=docs).astype(np.uint64))
    ends = np.cumsum(lengths, dtype=np.uint64)
    tokens = (np.arange(int(ends[-1]), dtype=np.uint64) % 1000 + 1).astype("<u2")
    tokens.tofile(f"{folder}/{s:05d}.ds")
    ends.astype("<u8").tofile(f"{folder}/{s:05d}.ds.index")
PY
  "$bin" shard import --from datatrove "$work/raw/ds$(printf %02d "$d")" --out "$work/data/ds$(printf %02d "$d")" \
    --vocab-size 1024 >/dev/null
  rm -rf "$work/raw"
done
read -r tokens documents < <(python3 - "$work/data" <<'PY'
import glob, struct, sys
tokens = documents = 0
for path in glob.glob(sys.argv[1] + "/*/*.zst"):
    with open(path, "rb") as f:
        f.seek(-32, 2); footer = f.read(32)
        offset, _ = struct.unpack("<QQ", footer[16:32])
        f.seek(offset + 8 + 24); t, m = struct.unpack("<QQ", f.read(16))
        tokens += t; documents += m
print(tokens, documents)
PY
)
L=1024
batch=8
end=$((3 * tokens))                       # three epochs of every dataset
steps=$((end / L / batch))
far=$((steps * 2 / 3))
{
  echo "sequence_length: $L"
  echo "seed: 1"
  echo "packing: {mode: bestfit, pad_token: 0, lookahead: 64}"
  echo "stages:"
  echo "  - name: all"
  echo "    start: 0"
  echo "    end: $end"
  echo "    mixture:"
  for ((d = 0; d < datasets; d++)); do printf '      ds%02d: 1\n' "$d"; done
} > "$work/curriculum.yaml"

run() {   # label, step, extra options...
  local label="$1" step="$2"; shift 2
  local start end
  start=$(date +%s.%N)
  "$bin" dump --offline "$work/curriculum.yaml" --data-root "$work/data" --step "$step" --batch-size "$batch" \
    --json "$@" > "$work/out-$label.jsonl" 2> "$work/err-$label.txt"
  end=$(date +%s.%N)
  printf '| %s | %s | %.2f |\n' "$label" "$step" "$(echo "$end - $start" | bc)"
}
echo "$datasets datasets, $((datasets * shards)) shards, $documents documents, $tokens tokens; step $far of $steps (batch $batch, L $L)"
echo
echo "| run | step | seconds |"
echo "|---|---:|---:|"
run "step 0, no cache" 0
run "far, no cache" "$far"
run "far, cache empty (written)" "$far" --cache-dir "$work/cache"
run "far, cache" "$far" --cache-dir "$work/cache"
run "other far step, cache" "$((far / 2 + 7))" --cache-dir "$work/cache"
echo
cmp "$work/out-far, no cache.jsonl" "$work/out-far, cache.jsonl"
cmp "$work/out-far, no cache.jsonl" "$work/out-far, cache empty (written).jsonl"
echo "cache: $(ls "$work/cache" | wc -l) files, $(cat "$work/cache"/* | wc -c) bytes; rows identical with and without it"
grep -h "tokenfeed dump:" "$work"/err-* | grep -v wrote | head -5 || true
