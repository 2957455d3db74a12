#!/usr/bin/env bash
# Import of a multi-gigabyte datatrove file: peak memory and core use.
# Builds GB gigabytes of .ds from the repository's real-text fixture (documents repeated), then times
# `tokenfeed shard import` under /usr/bin/time and checks `zstd -dc` gives back the .ds bytes.
# Usage: bench/import.sh [GB] [WORKDIR]     (default 2 GB, a temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
gb="${1:-2}"
work="${2:-$(mktemp -d)}"
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
swift build -c release --product tokenfeed >/dev/null
bin="$(swift build -c release --show-bin-path)/tokenfeed"
python3 - "$gb" "$work" <<'PY'
import sys, numpy as np
gb, work = float(sys.argv[1]), sys.argv[2]
src = 'fixtures/corpus/llama3-text/'
toks = np.concatenate([np.fromfile(src + p + '.ds', dtype='<u4') for p in ('part_00000', 'part_00001')])
ends = np.concatenate([np.fromfile(src + 'part_00000.ds.index', dtype='<u8'),
                       np.fromfile(src + 'part_00001.ds.index', dtype='<u8') + np.fromfile(src + 'part_00000.ds.index', dtype='<u8')[-1]])
reps = max(1, int(gb * 2**30 / toks.nbytes))
with open(work + '/big.ds', 'wb') as f:
    for _ in range(reps): toks.tofile(f)
np.concatenate([ends + i * len(toks) for i in range(reps)]).astype('<u8').tofile(work + '/big.ds.index')
open(work + '/big.ds.metadata', 'w').write(f"meta-llama/Llama-3.2-1B|4\n{reps * len(toks)}\n")
print(f"wrote {reps * toks.nbytes / 2**30:.2f} GiB ({reps * len(toks):,} tokens, {reps * len(ends):,} documents)")
PY
cat "$work/big.ds" > /dev/null     # read once: measure the import, not the disk
/usr/bin/time -f "elapsed %e s, user %U s, sys %S s, peak RSS %M KiB, CPU %P" \
  "$bin" shard import --from datatrove "$work/big.ds" --out "$work/out" --vocab-size 128256 2>&1
zstd -dc "$work/out/big.zst" | cmp - "$work/big.ds" && echo "zstd -dc output equals the .ds bytes"
cat "$work/big.ds" > /dev/null
/usr/bin/time -f "baseline zstd -3 -T2 (one stream, no frames or index): elapsed %e s, user %U s, peak RSS %M KiB, CPU %P" \
  zstd -q -3 -T2 -f "$work/big.ds" -o "$work/baseline.zst" 2>&1
rm -f "$work/baseline.zst"
ls -l "$work/big.ds" "$work/out/big.zst" | awk '{print $5, $9}'
[ -z "${2:-}" ] && rm -rf "$work"
