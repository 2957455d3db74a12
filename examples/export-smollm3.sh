#!/usr/bin/env bash
# SmolLM3's merge step, stage by stage, on the demo's generated corpus (docs/EXPORT.md, "Walk-through").
#
#   examples/export-smollm3.sh [WORK] [--read-back]
#
# Writes the demo corpus (71 datasets shaped like SmolLM3's) under WORK (default export-demo), exports
# the first 2 M tokens of each of the three stages — from the official stage files — in every format,
# serves the shards export back through its export.tokenfeed.yaml and compares it with
# `tokenfeed dump --offline` of the official curriculum. With --read-back, a virtual environment gets
# torch (CPU), datatrove and megatron-core, and examples/export_read_back.py reads the datatrove and
# Megatron exports with their own classes, comparing every sequence with the dump.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-export-demo}
READ_BACK=0
[[ "${2:-}" == "--read-back" ]] && READ_BACK=1
BIN=${TOKENFEED_BIN:-$(swift build --show-bin-path)}
T="$BIN/tokenfeed"
[[ -x "$T" ]] || { echo "build first: swift build" >&2; exit 1; }
mkdir -p "$WORK"
"$T" demo --out "$WORK/demo" --offline-only > "$WORK/demo.log"
ROOT="$WORK/demo/data"
SPAN=2000000
L=4096
PY=python3
if [[ $READ_BACK == 1 ]]; then
  [[ -x "$WORK/venv/bin/python" ]] || python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install -q numpy torch datatrove megatron-core
  PY="$WORK/venv/bin/python"
fi

stage=0
while IFS='|' read -r file name start; do
  stage=$((stage + 1))
  curriculum="fixtures/curricula/smollm3/$file"
  end=$((start + SPAN))
  first=$(( (start + L - 1) / L )); last=$(( (end + L - 1) / L )); count=$((last - first))
  echo "stage $stage ($name): tokens $start..$end = sequences $first..<$last"
  "$T" dump --offline "$curriculum" --data-root "$ROOT" --json --step "$first" --count "$count" > "$WORK/stage$stage.dump.jsonl"
  for format in shards datatrove megatron jsonl-provenance; do
    out="$WORK/stage$stage-$format"
    rm -rf "$out"
    "$T" export "$curriculum" --data-root "$ROOT" --out "$out" --tokens "$start..$end" --format "$format" --shard-tokens 500000
  done
  "$T" dump --offline "$WORK/stage$stage-shards/export.tokenfeed.yaml" --data-root "$WORK" --json --count "$count" \
    > "$WORK/stage$stage.served.jsonl"
  python3 - "$WORK/stage$stage.dump.jsonl" "$WORK/stage$stage.served.jsonl" <<'PY'
import json, sys
a = [json.loads(l)["tokens"] for l in open(sys.argv[1])]
b = [json.loads(l)["tokens"] for l in open(sys.argv[2])]
assert a == b, "the served-back export differs from the dump"
print(f"  shards export served back: {len(a)} sequences identical to the dump")
PY
  if [[ $READ_BACK == 1 ]]; then
    "$PY" examples/export_read_back.py "$WORK/stage$stage.dump.jsonl" "$WORK/stage$stage-datatrove" "$WORK/stage$stage-megatron" $L
  fi
done <<'STAGES'
stage1_8T.yaml|stable|0
stage2_8T_9T.yaml|stable stage 2|8139571200000
stage3_9T_11T.yaml|decay stage|9904324608000
STAGES
echo "done: exports under $WORK"
