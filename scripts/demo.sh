#!/usr/bin/env bash
# The main job: sets up prerequisites, builds tokenfeed, then runs the best end-to-end path that exists:
# imports the corpus fixture into shards, verifies them, inspects one, and plans the official SmolLM3
# three-stage curriculum on a generated corpus (tokenfeed demo).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product tokenfeed
swift build -c release --product tokenfeedd
bin="$(swift build -c release --show-bin-path)"
out="${TOKENFEED_DEMO_DIR:-demo-out}"
rm -rf "$out" && mkdir -p "$out"

echo "== import the llama3-text fixture (datatrove format) into shards"
"$bin/tokenfeed" shard import --from datatrove fixtures/corpus/llama3-text --out "$out/shards/llama3-text" \
  --tokens-per-frame 65536 --vocab-size 128256
echo "== verify every shard"
"$bin/tokenfeed" shard verify --verbose "$out/shards/llama3-text"
echo "== inspect the dataset"
"$bin/tokenfeed" shard inspect "$out/shards/llama3-text"
echo "== the SmolLM3 curriculum on a generated corpus"
"$bin/tokenfeed" demo --out "$out"
