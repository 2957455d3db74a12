#!/usr/bin/env bash
# `tokenfeed export` throughput against `tokenfeed shard import` of the same tokens, in one run.
# Builds the demo corpus (72 datasets shaped like SmolLM3's) and, RUNS times (default 3):
#   1. exports the first TOKENS tokens of the SmolLM3 stage-3 curriculum as shards (decompress,
#      mix, pack, compress: the whole export path), timed;
#   2. exports the same range as datatrove files (untimed), then imports those files with
#      `tokenfeed shard import --from datatrove` (read, index, compress), timed.
# Prints each run's tokens/s and the medians; both use all cores and zstd level 3.
# Usage: bench/export.sh [TOKENS] [RUNS] [WORKDIR]      (default 50M tokens, 3 runs, a temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
tokens="${1:-50000000}"
runs="${2:-3}"
work="${3:-$(mktemp -d)}"
swift build -c release --product tokenfeed >/dev/null
bin="$(swift build -c release --show-bin-path)/tokenfeed"
curriculum=fixtures/curricula/smollm3/stage3_9T_11T.yaml
"$bin" demo --out "$work/demo" --offline-only --tokens-per-dataset 4000000 > /dev/null
root="$work/demo/data"
now() { date +%s.%N; }
results=()
for r in $(seq 1 "$runs"); do
  rm -rf "$work/shards" "$work/dt" "$work/imported"
  t0=$(now)
  "$bin" export "$curriculum" --data-root "$root" --out "$work/shards" --tokens "..$tokens" > /dev/null
  t1=$(now)
  "$bin" export "$curriculum" --data-root "$root" --out "$work/dt" --tokens "..$tokens" --format datatrove > /dev/null
  t2=$(now)
  "$bin" shard import --from datatrove "$work/dt" --out "$work/imported" > /dev/null
  t3=$(now)
  line=$(python3 -c "
t=$tokens*4097/4096; e=$t1-$t0; i=$t3-$t2
print(f'{t/e/1e6:.1f} {t/i/1e6:.1f} {(t/e)/(t/i):.2f}')")
  echo "run $r: export $(cut -d' ' -f1 <<<"$line") M tokens/s, import $(cut -d' ' -f2 <<<"$line") M tokens/s, ratio $(cut -d' ' -f3 <<<"$line")"
  results+=("$line")
done
printf '%s\n' "${results[@]}" | python3 -c "
import sys, statistics as s
rows=[list(map(float,l.split())) for l in sys.stdin if l.strip()]
print(f'median: export {s.median(r[0] for r in rows):.1f} M tokens/s, import {s.median(r[1] for r in rows):.1f} M tokens/s, export/import {s.median(r[2] for r in rows):.2f}x')"
if [ -z "${3:-}" ]; then rm -rf "$work"; fi
