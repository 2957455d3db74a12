#!/usr/bin/env bash
# The hot path's cost on a real corpus whose frames are cold (issue 14.6; docs/BENCHMARKS.md, "Cold corpus").
#
# Builds a corpus of real Llama-3-tokenized text — the documents of the datatrove files part_00000
# and part_00001 in SOURCE (default fixtures/corpus/llama3-text, a 639,563-token slice; the project's
# machines hold the whole 8.03 M-token corpus in /work/shared/corpus/llama3-text) repeated COPIES
# times as separate datatrove files (default 25: 50 files; 200.8 M tokens from the whole corpus) —
# imports it with `tokenfeed shard import` (default 1 Mi tokens a frame, level 3), and serves it with
# a one-stage concat curriculum and a preload budget far below the corpus (default 64 MiB for 803 MB
# of tokens), so every frame is decompressed when the stream reaches it, as at scale. Then, in each
# of RUNS runs, side by side:
#   - libzstd alone: bench/cold_corpus/zstd_frames.c decompresses every data frame of the same shard
#     files on one thread (ZSTD_decompressDCtx, one context, one reused buffer; files read into
#     memory first): tokens/s and CPU-s per 10⁹ tokens; then the CRC-32 of every compressed frame,
#     which the daemon checks too (libzstd + CRC-32: the floor the shard format sets);
#   - each daemon given with --daemon NAME=PATH (default: this tree's release tokenfeedd), started
#     fresh (empty frame cache), serving one pass over the corpus (⌊tokens / (B·L)⌋ batches) to
#     bench/cold_corpus/client.c — a C client that receives each Batch into one buffer and returns a
#     Credit(1) per batch: the daemon's CPU-s per 10⁹ tokens served (utime + stime of the whole
#     process from /proc over the session) and the client's tokens/s (first batch to last);
#   - with --python PYTHON, each daemon again serving the pass to the Python client
#     (bench/cold_corpus/python_client.py: `tokenfeed.Client`, raw batches; PYTHON needs numpy).
# Daemons alternate within a run (before/after comparisons in one run). Medians over the runs and
# ratios against libzstd's medians of the same run are printed at the end. With --check, each
# daemon first serves CHECK batches to the client with --hash: the hashes must agree. With
# --profile, each daemon then serves one more pass under `perf record -g` (999 Hz) and the script
# prints where its CPU went: the share of its samples in libzstd, in each system call's user-space
# entry (inclusive of the kernel's work and of the context switches it causes), in memmove, and the
# rest; and, from a third pass under `perf stat`, its system calls per batch.
#
# Usage: bench/cold_corpus.sh [--source DIR] [--runs 3] [--copies 25] [--preload 64MiB] [--batch 8]
#                             [--seq 4096] [--credits 8] [--work DIR] [--daemon NAME=PATH]...
#                             [--check BATCHES] [--profile] [--python PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
source=fixtures/corpus/llama3-text runs=3 copies=25 preload=64MiB batch=8 seq=4096 credits=8
work="" check=0 profile=0 python=""
daemons=()
while [ $# -gt 0 ]; do
  case "$1" in
    --source) source="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --copies) copies="$2"; shift 2 ;;
    --preload) preload="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --seq) seq="$2"; shift 2 ;;
    --credits) credits="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --daemon) daemons+=("$2"); shift 2 ;;
    --check) check="$2"; shift 2 ;;
    --profile) profile=1; shift ;;
    --python) python="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$work" ]; then
  work="$(mktemp -d /tmp/tokenfeed-cold.XXXXXX)"
  [ "$profile" -eq 1 ] || trap 'rm -rf "$work"' EXIT      # a temporary corpus, unless perf files were asked for
fi
mkdir -p "$work/bin"
swift build -c release --product tokenfeed >/dev/null
bin="$(swift build -c release --show-bin-path)"
if [ ${#daemons[@]} -eq 0 ]; then
  swift build -c release --product tokenfeedd >/dev/null
  daemons=("tokenfeedd=$bin/tokenfeedd")
fi
cc -O2 -o "$work/bin/client" bench/cold_corpus/client.c
cc -O2 -o "$work/bin/zstd_frames" bench/cold_corpus/zstd_frames.c -lzstd -lz

# The corpus: COPIES × the source's two datatrove files (symbolic links), imported once.
src="$(cd "$source" && pwd)"
data="$work/data/text"
if [ ! -d "$data" ]; then
  mkdir -p "$work/src"
  for ((c = 0; c < copies; c++)); do
    for part in part_00000 part_00001; do
      for ext in ds ds.index ds.metadata; do
        ln -sf "$src/$part.$ext" "$work/src/$(printf 'copy%03d' $c)_$part.$ext"
      done
    done
  done
  "$bin/tokenfeed" shard import --from datatrove "$work/src" --out "$data" --vocab-size 128256 | tail -1
fi
tokens=$(( copies * ($(sed -n 2p "$src/part_00000.ds.metadata") + $(sed -n 2p "$src/part_00001.ds.metadata")) ))
batches=$(( tokens / (batch * seq) ))
# The stream ends after one pass (the last whole batch): the daemon's look-ahead never reaches into
# a second epoch, so the frames it decompresses are exactly the corpus's (counted from its metrics).
cat > "$work/cold.yaml" <<EOF
sequence_length: $seq
seed: 1
stages:
  - name: cold
    start: 0
    end: $(( batches * batch * seq ))
    mixture:
      text: 1.0
EOF
shards=("$data"/*.zst)
echo "corpus: $tokens tokens ($copies copies of the source's $((tokens / copies)) real tokens), ${#shards[@]} shards," \
     "$(du -cb "${shards[@]}" | tail -1 | cut -f1) bytes compressed; preload $preload;" \
     "$batches batches of $batch × $seq per pass"

ticks=$(getconf CLK_TCK)
metrics_port=$(( 20000 + $$ % 20000 ))
# Frames the daemon decompressed (cache misses), from its metrics endpoint.
frames_of() {
  curl -s "http://127.0.0.1:$metrics_port/metrics" | awk '/^tokenfeed_frames_decompressed_total/ { print $2 }'
}
cpu_of() { awk -v t="$ticks" '{ print ($14 + $15) / t }' "/proc/$1/stat"; }

# Runs "$@" — a daemon's path, or a perf command followed by it — with the scenario's options on
# $work/d.sock and waits for the socket; daemon_pid is the daemon's process (not perf's).
start_daemon() {
  rm -rf "$work/d.sock" "$work/state"
  "$@" --curriculum "$work/cold.yaml" --data-root "$work/data" --socket "$work/d.sock" --state-dir "$work/state" \
    --preload-bytes "$preload" --log-level warning --metrics-listen "127.0.0.1:$metrics_port" 2>>"$work/daemon.log" &
  daemon_pid=$!
  for _ in $(seq 600); do
    if [ -S "$work/d.sock" ]; then
      [ $# -gt 1 ] && daemon_pid=$(pgrep -P "$daemon_pid")
      return 0
    fi
    sleep 0.05
  done
  echo "daemon $1 did not start (see $work/daemon.log)" >&2; exit 1
}
stop_daemon() { kill "$daemon_pid"; wait 2>/dev/null || true; }

[ "$check" -le "$batches" ] || check=$batches
if [ "$check" -gt 0 ]; then
  cat "${shards[@]}" >/dev/null
  for d in "${daemons[@]}"; do
    start_daemon "${d#*=}"
    line=$("$work/bin/client" "$work/d.sock" "$batch" "$check" --credits "$credits" --hash)
    stop_daemon
    echo "check ${d%%=*}: $(grep -o 'batches=[0-9]*' <<<"$line") $(grep -o 'hash=[0-9a-f]*' <<<"$line")"
  done
fi

# Serves one pass of daemon $2 (a path) to the client command "${@:3}" and prints the run's line for
# run $1: the daemon's CPU over the session, the frames it decompressed, and the client's figures.
serve_pass() {
  local run=$1 name=$2 before after frames line
  start_daemon "$3"
  before=$(cpu_of "$daemon_pid")
  line=$("${@:4}" "$work/d.sock" "$batch" "$batches" --credits "$credits")
  after=$(cpu_of "$daemon_pid")
  frames=$(frames_of)
  stop_daemon
  echo "run $run daemon $name daemon_cpu_s=$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.2f", a - b }')" \
       "frames_decompressed=$frames $line"
}

results="$work/results.txt"
: > "$results"
for ((r = 1; r <= runs; r++)); do
  cat "${shards[@]}" >/dev/null      # compressed shards in the page cache: measure decompression, not the disk
  z=$("$work/bin/zstd_frames" 4 "${shards[@]}")        # 4 bytes a token: Llama-3 ids are uint32
  echo "run $r zstd $z" | tee -a "$results"
  for d in "${daemons[@]}"; do
    serve_pass "$r" "${d%%=*}" "${d#*=}" "$work/bin/client" | tee -a "$results"
    if [ -n "$python" ]; then
      serve_pass "$r" "${d%%=*}+python" "${d#*=}" "$python" bench/cold_corpus/python_client.py | tee -a "$results"
    fi
  done
done

python3 - "$results" <<'PY'
import sys, statistics as st
runs = {}
for line in open(sys.argv[1]):
    w = line.split()
    r, kind = int(w[1]), w[2]
    kv = dict(x.split('=', 1) for x in w if '=' in x)
    name = 'zstd' if kind == 'zstd' else w[3]
    runs.setdefault(name, []).append((r, kv))
z = runs.pop('zstd')
zr = st.median(float(kv['tokens_per_s']) for _, kv in z)
zc = st.median(float(kv['cpu_s_per_1e9']) for _, kv in z)
def row(label, median, ratio, values, run_ratios=None):
    line = f"{label:34}{median:>14}{ratio:>12}   {values}"
    print(line + (f"   (run by run: {run_ratios})" if run_ratios else ""))
def listed(values, scale=1, digits=2, unit=''):
    return ' '.join(f"{v / scale:.{digits}f}{unit}" for v in values)
zrun = dict(z)
print(f"\n{'':34}{'median':>14}{'vs libzstd':>12}   runs")
row('libzstd, 1 thread: tokens/s', f"{zr / 1e6:.1f} M", '1.00×',
    listed([float(kv['tokens_per_s']) for _, kv in z], 1e6, 1))
row('libzstd: CPU-s per 1e9 tokens', f"{zc:.2f}", '1.00×', listed([float(kv['cpu_s_per_1e9']) for _, kv in z]))
floor = [float(kv['cpu_s_per_1e9']) + float(kv['crc_cpu_s_per_1e9']) for _, kv in z]
row('+ CRC-32 (the format\'s floor)', f"{st.median(floor):.2f}", f"{st.median(floor) / zc:.2f}×", listed(floor))
for name, vals in runs.items():
    cpu = [float(kv['daemon_cpu_s']) / int(kv['tokens']) * 1e9 for _, kv in vals]
    rate = [float(kv['tokens_per_s']) for _, kv in vals]
    client_cpu = [float(kv['cpu_s']) / int(kv['tokens']) * 1e9 for _, kv in vals]
    # Ratios run by run, against that run's libzstd.
    cpu_ratios = [c / float(zrun[r]['cpu_s_per_1e9']) for (r, _), c in zip(vals, cpu)]
    rate_ratios = [x / float(zrun[r]['tokens_per_s']) for (r, _), x in zip(vals, rate)]
    client = 'Python client' if name.endswith('+python') else 'C client'
    row(f"{name}: daemon CPU-s per 1e9", f"{st.median(cpu):.2f}", f"{st.median(cpu) / zc:.2f}×", listed(cpu),
        listed(cpu_ratios, unit='×'))
    row(f"{name}: {client} tokens/s", f"{st.median(rate) / 1e6:.1f} M", f"{st.median(rate) / zr:.2f}×",
        listed(rate, 1e6, 1), listed(rate_ratios, unit='×'))
    row(f"{name}: client CPU-s per 1e9", f"{st.median(client_cpu):.2f}", '', listed(client_cpu))
PY

if [ "$profile" -eq 1 ]; then
  command -v perf >/dev/null || apt-get install -y -qq linux-perf >/dev/null
  for d in "${daemons[@]}"; do
    name=${d%%=*}
    cat "${shards[@]}" >/dev/null
    start_daemon perf record -F 999 -g -o "$work/$name.perf" -- "${d#*=}"
    "$work/bin/client" "$work/d.sock" "$batch" "$batches" --credits "$credits" >/dev/null
    stop_daemon
    # And the system calls of one more pass, per batch served.
    events=()
    for call in sendmsg recvfrom futex sched_yield clock_nanosleep poll epoll_wait pread64; do
      events+=(-e "syscalls:sys_enter_$call")
    done
    cat "${shards[@]}" >/dev/null
    start_daemon perf stat "${events[@]}" -x, -o "$work/$name.syscalls" -- "${d#*=}"
    "$work/bin/client" "$work/d.sock" "$batch" "$batches" --credits "$credits" >/dev/null
    stop_daemon
    echo; echo "$name's system calls per batch served (perf stat of one pass):"
    awk -F, -v n="$batches" '/sys_enter_/ { sub(/.*sys_enter_/, "", $3); printf "  %-16s %6.2f\n", $3, $1 / n }' \
      "$work/$name.syscalls"
    echo; echo "where $name's CPU went (perf record -g of one pass; $work/$name.perf):"
    python3 - <(perf report -i "$work/$name.perf" --no-children --sort dso,sym --stdio -g none 2>/dev/null) \
              <(perf report -i "$work/$name.perf" --children --sort sym --stdio -g none 2>/dev/null) <<'PY'
import re, sys
def rows(path, children):
    out = []
    for line in open(path):
        if line.startswith('#') or '%' not in line: continue
        w = line.split()
        try: out.append((float(w[0].rstrip('%')), w[-1] if children else (w[1], w[-1])))
        except ValueError: pass
    return out
own = rows(sys.argv[1], False)          # (self %, (dso, symbol))
inc = dict((s, p) for p, s in rows(sys.argv[2], True))   # symbol -> inclusive %
def incl(*names): return sum(inc.get(n, 0.0) for n in names)
parts = [
    ('libzstd (decompression)', sum(p for p, (d, _) in own if d.startswith('libzstd'))),
    ('CRC-32 of each compressed frame (zlib)', sum(p for p, (_, s) in own if s == 'crc32_z')),
    ('pread of compressed frames (copy from the page cache)', incl('__libc_pread', '__pread64')),
    ('memmove/memcpy (the copy into the ring slot)',
     sum(p for p, (d, s) in own if d.startswith('libc') and re.match(r'__mem(move|cpy)', s))),
    ('sendmsg (copy into the socket)', incl('__libc_sendmsg')),
    ('recv (the client\'s Credits)', incl('__libc_recv', '__libc_recvfrom')),
    ('waiting: usleep',
     incl('clock_nanosleep@GLIBC_2.2.5', '__nanosleep') + sum(p for p, (_, s) in own if s == 'usleep')),
    ('waiting: sched_yield', incl('__sched_yield')),
    ('waiting: poll (socket full)', incl('__poll')),
    ('wake-ups: semaphores, futexes, epoll',
     incl('sem_post@GLIBC_2.2.5', '__futex_abstimed_wait_common', 'epoll_wait', '_dispatch_semaphore_wait_slow',
          '__lll_lock_wake')),
]
for name, p in parts: print(f"  {name:66}{p:6.1f} %")
rest = 'the rest (planning, batch headers, Swift runtime, page faults, …)'
print(f"  {rest:66}{100 - sum(p for _, p in parts):6.1f} %")
PY
  done
fi
echo "raw results: $results (work folder $work$([ -z "$(trap -p EXIT)" ] || echo ', removed at exit'))"
