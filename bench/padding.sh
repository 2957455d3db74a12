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
#
#   bench/padding.sh --speed                  # how fast the packer counts rows (the cost of a cold jump):
#                                             # Sources/Daemon/Engine/Packing/BestFitPacker.swift compiled
#                                             # with -O against a stand-in ShardMetadata, on 2 M synthetic
#                                             # documents with log-normal lengths (median about 1,100 tokens)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--speed" ]]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  cat > "$work/shim.swift" <<'SWIFT'
struct ShardMetadata {
    var documentEnds: [UInt64]
    var documentCount: Int { documentEnds.count }
    func documentStart(_ d: Int) -> UInt64 { d == 0 ? 0 : documentEnds[d - 1] }
}
SWIFT
  grep -v '^import TokenfeedShards' Sources/Daemon/Engine/Packing/BestFitPacker.swift > "$work/packer.swift"
  cat > "$work/main.swift" <<'SWIFT'
import Glibc
var state: UInt64 = 42
func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}
func now() -> Double { var t = timespec(); clock_gettime(CLOCK_MONOTONIC, &t); return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9 }
let n = 2_000_000
var ends: [UInt64] = []
var total: UInt64 = 0
for _ in 0 ..< n {      // log-normal lengths: median e^7 ≈ 1,100 tokens, σ 1.3
    let u = Double(next() % 1_000_000 + 1) / 1_000_001, v = Double(next() % 1_000_000 + 1) / 1_000_001
    total += UInt64(max(10, exp(7 + 1.3 * (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))))
    ends.append(total)
}
let metadata = ShardMetadata(documentEnds: ends)
print("| sequence length | look-ahead | count rows (M documents/s) | count and lay out rows (M documents/s) |")
print("|---:|---:|---:|---:|")
for length in [1024, 4096] {
    for lookahead in [1, 64, 1024, 65536] {
        var packer = BestFitPacker(rowTokens: length + 1)
        var start = now()
        var first = 0
        while first < n { let end = min(n, first + lookahead); packer.pack(metadata, documents: first ..< end); first = end }
        let count = Double(n) / (now() - start) / 1e6
        start = now()
        first = 0
        while first < n { let end = min(n, first + lookahead); packer.pack(metadata, documents: first ..< end); packer.materialize(); first = end }
        let layout = Double(n) / (now() - start) / 1e6
        print("| \(length) | \(lookahead) | \(Int(count * 10 + 0.5) / 10).\(Int(count * 10 + 0.5) % 10) | \(Int(layout * 10 + 0.5) / 10).\(Int(layout * 10 + 0.5) % 10) |")
    }
}
SWIFT
  swiftc -O "$work/shim.swift" "$work/packer.swift" "$work/main.swift" -o "$work/speed"
  "$work/speed"
  exit 0
fi
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
