#!/usr/bin/env python3
"""Throughput of one Python consumer of tokenfeedd, against a nanoGPT-style numpy.memmap loader over
the same tokens uncompressed, measured in the same run.

Usage:
    python3 bench/python_client.py [--bin DIR] [--runs 5] [--batches 1500] [--batch-size 8]
                                   [--sequence-length 2048] [--keep DIR]

It imports the corpus fixture (fixtures/corpus/llama3-text, uint32 Llama-3 ids) into shards in a
temporary data root, writes a one-stage curriculum (concat packing) and starts ``tokenfeedd`` (from
``--bin``, ``$TOKENFEED_BIN`` or PATH). Then, for each of ``--runs`` runs, in alternation, each on a
fresh session (rank 0 of 1, ``--batch-size`` rows, 4 credits) timing ``--batches`` batches after one
warm-up batch:

- ``bare recv_into loop``: the least a Python reader of the protocol can do: Hello, then per batch
  ``recv_into`` of the frame into one preallocated buffer and a Credit back; no decoding, no checks.
- ``(a) tokenfeed client, raw batches``: ``tokenfeed.Client`` (every frame decoded and checked);
  per batch it takes the ``inputs`` and ``labels`` views (no copy) and reads one token of each.
- ``tokenfeed client, int64 x and y``: the same, converting ``x`` and ``y`` with ``astype(np.int64)``.
- ``(b) tokenfeed.torch dataset``: ``TokenfeedIterableDataset`` (key map ``tokenfeed``): int64
  ``input_ids`` and ``labels``, ``position_ids``, ``loss_mask`` and flattened ``cu_seqlens`` as
  torch tensors, per batch (skipped when torch is not installed).
- ``memmap baseline``: nanoGPT's ``get_batch``: per batch a fresh ``np.memmap`` of the raw ``.ds``
  token file (both fixture parts concatenated, uncompressed, in the page cache), ``B`` random offsets,
  ``np.stack`` of ``x = data[i:i+L]`` and ``y = data[i+1:i+1+L]``: as int64 (nanoGPT) and raw uint32.

Tokens are counted as ``B × L`` per batch (what the trainer trains on). Prints a Markdown table with
the median tokens/s over the runs and the range.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "clients" / "python"))

import tokenfeed  # noqa: E402
from tokenfeed import protocol as P  # noqa: E402

try:
    import torch  # noqa: F401
    from tokenfeed.torch import TokenfeedIterableDataset
except ImportError:
    TokenfeedIterableDataset = None

CORPUS = REPO / "fixtures" / "corpus" / "llama3-text"


def find(name: str, folder: str | None) -> str:
    for base in (folder, os.environ.get("TOKENFEED_BIN")):
        if base:
            p = pathlib.Path(base)
            p = p.parent if p.is_file() else p
            if (p / name).is_file():
                return str(p / name)
    path = shutil.which(name)
    if not path:
        sys.exit(f"{name} not found (give --bin DIR, set TOKENFEED_BIN or put it on PATH)")
    return path


def prepare(root: pathlib.Path, tokenfeed_bin: str, L: int) -> pathlib.Path:
    subprocess.run([tokenfeed_bin, "shard", "import", "--from", "datatrove", *map(str, sorted(CORPUS.glob("*.ds"))),
                    "--out", str(root / "web"), "--vocab-size", "128256"], check=True, capture_output=True)
    (root / "curriculum.yaml").write_text(
        f"sequence_length: {L}\nseed: 1\nstages:\n  - name: only\n    start: 0\n    end: 1T\n    mixture: {{web: 1}}\n")
    raw = root / "raw.u32"
    with open(raw, "wb") as out:
        for part in sorted(CORPUS.glob("*.ds")):
            out.write(part.read_bytes())
    return raw


def run_client(sock: str, job: str, B: int, batches: int, int64: bool, metadata: bool) -> tuple[float, float]:
    """Returns (tokens/s over ``batches`` after one warm-up batch, first-batch latency in s)."""
    t0 = time.perf_counter()
    with tokenfeed.Client(sock, 0, 1, B, credits=4, job_id=job, timeout=120) as c:
        first = c.next()
        t1 = time.perf_counter()
        L = first.sequence_length
        sink = 0
        for _ in range(batches):
            b = c.next()
            x, y = b.inputs, b.labels
            if int64:  # what the baseline (and a PyTorch trainer's embedding lookup) needs
                x, y = x.astype(np.int64), y.astype(np.int64)
            sink += int(x[0, 0]) + int(y[-1, -1])
            if metadata:
                sink += int(b.position_ids[-1, -1])
                sink += b.varlen_cu_seqlens()[1]
        t2 = time.perf_counter()
    assert sink >= 0
    return batches * B * L / (t2 - t1), t1 - t0


def run_bare(sock_path: str, job: str, B: int, batches: int) -> tuple[float, float]:
    """The bare protocol loop: (tokens/s, first-batch latency)."""
    import socket
    t0 = time.perf_counter()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(120)
    s.connect(sock_path)
    s.sendall(P.Hello(0, 1, B, 4, None, job, "").encode(1))
    head = bytearray(P.HEADER_SIZE)
    hv = memoryview(head)
    buf = bytearray(64 << 20)
    bv = memoryview(buf)
    credit = P.encode_credit(1)

    def recv_exact(view, n):
        got = 0
        while got < n:
            k = s.recv_into(view[got:n], n - got)
            if k == 0:
                raise ConnectionError("closed")
            got += k

    def frame() -> int:
        recv_exact(hv, P.HEADER_SIZE)
        n = int.from_bytes(head[16:20], "little")
        recv_exact(bv, n)
        return n

    frame()  # Welcome
    frame()  # first batch
    L = int.from_bytes(buf[20:24], "little")  # sequence_length, at payload offset 20
    t1 = time.perf_counter()
    for _ in range(batches):
        s.sendall(credit)
        frame()
    t2 = time.perf_counter()
    s.close()
    return batches * B * L / (t2 - t1), t1 - t0


def run_torch(sock: str, job: str, B: int, batches: int) -> tuple[float, float]:
    """``TokenfeedIterableDataset`` batches as tensors: (tokens/s, first-batch latency)."""
    t0 = time.perf_counter()
    ds = TokenfeedIterableDataset(sock, batch_size=B, rank=0, world_size=1, job=job, timeout=120)
    it = iter(ds)
    item = next(it)
    t1 = time.perf_counter()
    L = item["input_ids"].shape[1]
    sink = 0
    for _ in range(batches):
        item = next(it)
        sink += item["max_seqlen"]
    t2 = time.perf_counter()
    ds.close()
    assert sink >= 0
    return batches * B * L / (t2 - t1), t1 - t0


def run_memmap(raw: pathlib.Path, B: int, L: int, batches: int, seed: int, int64: bool = True) -> float:
    rng = np.random.default_rng(seed)
    sink = 0
    t0 = time.perf_counter()
    for _ in range(batches):
        data = np.memmap(raw, dtype=np.uint32, mode="r")  # nanoGPT recreates it per batch
        ix = rng.integers(0, len(data) - L - 1, size=B)
        if int64:
            x = np.stack([data[i:i + L].astype(np.int64) for i in ix])
            y = np.stack([data[i + 1:i + 1 + L].astype(np.int64) for i in ix])
        else:
            x = np.stack([data[i:i + L] for i in ix])
            y = np.stack([data[i + 1:i + 1 + L] for i in ix])
        sink += int(x[0, 0]) + int(y[-1, -1])
    t1 = time.perf_counter()
    assert sink >= 0
    return batches * B * L / (t1 - t0)


@contextlib.contextmanager
def served_corpus(tokenfeed_bin: str, tokenfeedd_bin: str, L: int, keep: str | None, prefix: str, extra: list[str] = ()):
    """Imports the corpus fixture into a data root (in `keep`, else a temporary folder removed after),
    starts tokenfeedd on it and yields (socket path, raw token file, daemon process); stops it after."""
    folder = pathlib.Path(keep) if keep else pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    folder.mkdir(parents=True, exist_ok=True)
    root = folder / "root"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    raw = prepare(root, tokenfeed_bin, L)
    sock = str(folder / "tokenfeed.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    log = open(folder / "tokenfeedd.log", "w")
    daemon = subprocess.Popen([tokenfeedd_bin, "--curriculum", str(root / "curriculum.yaml"), "--data-root", str(root),
                               "--socket", sock, *extra], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(sock):
            if daemon.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"tokenfeedd did not start; see {folder / 'tokenfeedd.log'}")
            time.sleep(0.05)
        yield sock, raw, daemon
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def consumer_arguments(description: str) -> argparse.ArgumentParser:
    """The options every consumer benchmark takes: --bin, --runs, --batches, --batch-size, --sequence-length."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--bin", help="folder holding tokenfeed and tokenfeedd")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batches", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--sequence-length", type=int, default=2048)
    return ap


def main() -> None:
    ap = consumer_arguments(__doc__.split("\n\n")[0])
    ap.add_argument("--keep", help="use this folder for the data root (kept)")
    args = ap.parse_args()
    B, L, N = args.batch_size, args.sequence_length, args.batches
    tokenfeed_bin, tokenfeedd_bin = find("tokenfeed", args.bin), find("tokenfeedd", args.bin)

    with served_corpus(tokenfeed_bin, tokenfeedd_bin, L, args.keep, "tf-bench-py-") as (sock, raw, _):
        MEMMAP = "memmap baseline (nanoGPT get_batch, int64 x and y)"
        variants = [("tokenfeed client, raw batches: zero-copy views (a)", False, False),
                    ("tokenfeed client, int64 x and y", True, False)]
        results: dict[str, list[float]] = {"bare recv_into loop (no decoding)": []}
        results.update({name: [] for name, _, _ in variants})
        TORCH = "tokenfeed.torch dataset: int64 input_ids, labels + position_ids, loss_mask, cu_seqlens (b)"
        if TokenfeedIterableDataset is not None:
            results[TORCH] = []
        results[MEMMAP] = []
        results["memmap baseline, raw uint32 x and y"] = []
        first_batch: list[float] = []
        for run in range(args.runs):
            tps, _ = run_bare(sock, f"bench-{run}-bare", B, N)
            results["bare recv_into loop (no decoding)"].append(tps)
            for k, (name, int64, metadata) in enumerate(variants):
                tps, first = run_client(sock, f"bench-{run}-{k}", B, N, int64=int64, metadata=metadata)
                results[name].append(tps)
                first_batch.append(first)
            if TokenfeedIterableDataset is not None:
                results[TORCH].append(run_torch(sock, f"bench-{run}-torch", B, N)[0])
            results[MEMMAP].append(run_memmap(raw, B, L, N, seed=run))
            results["memmap baseline, raw uint32 x and y"].append(run_memmap(raw, B, L, N, seed=run, int64=False))
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1] / 1e6:.1f}M tok/s" for k, v in results.items()), file=sys.stderr)

    base = statistics.median(results[MEMMAP])
    print(f"B = {B}, L = {L}, {N} batches a run, median of {args.runs} runs; tokenfeedd = {tokenfeedd_bin}\n")
    bare = statistics.median(results["bare recv_into loop (no decoding)"])
    print("| loader | tokens/s (median) | range | vs memmap int64 | vs bare loop |")
    print("|---|---:|---:|---:|---:|")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"| {name} | {med / 1e6:.1f} M | {min(values) / 1e6:.1f}–{max(values) / 1e6:.1f} M | {med / base:.2f}× | {med / bare:.2f}× |")
    print(f"\nfirst batch after connecting (median): {statistics.median(first_batch) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
