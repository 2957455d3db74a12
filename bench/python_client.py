#!/usr/bin/env python3
"""Throughput of one Python consumer of tokenfeedd, against a nanoGPT-style numpy.memmap loader over
the same tokens uncompressed, measured in the same run.

Usage:
    python3 bench/python_client.py [--bin DIR] [--runs 5] [--batches 1500] [--batch-size 8]
                                   [--sequence-length 2048] [--keep DIR]

It imports the corpus fixture (fixtures/corpus/llama3-text, uint32 Llama-3 ids) into shards in a
temporary data root, writes a one-stage curriculum (concat packing) and starts ``tokenfeedd`` (from
``--bin``, ``$TOKENFEED_BIN`` or PATH). Then, for each of ``--runs`` runs, in alternation:

- ``tokenfeed client, zero-copy views``: a fresh ``tokenfeed.Client`` (rank 0 of 1, ``--batch-size``
  rows, 4 credits) receives ``--batches`` batches after one warm-up batch; per batch it takes the
  ``inputs`` and ``labels`` views (no copy) and reads one token of each.
- ``tokenfeed client, int64 x and y``: the same, converting ``x`` and ``y`` to int64 as the baseline
  does (the same work per batch as the baseline).
- ``… + position ids + varlen cu_seqlens``: also computing ``position_ids`` and
  ``varlen_cu_seqlens()`` per batch (what a packed-attention trainer needs).
- ``memmap baseline``: nanoGPT's ``get_batch``: per batch a fresh ``np.memmap`` of the raw ``.ds``
  token file (both fixture parts concatenated, uncompressed, in the page cache), ``B`` random offsets,
  ``np.stack`` of ``x = data[i:i+L]`` and ``y = data[i+1:i+1+L]`` (two copies).

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


def run_memmap(raw: pathlib.Path, B: int, L: int, batches: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    sink = 0
    t0 = time.perf_counter()
    for _ in range(batches):
        data = np.memmap(raw, dtype=np.uint32, mode="r")  # nanoGPT recreates it per batch
        ix = rng.integers(0, len(data) - L - 1, size=B)
        x = np.stack([data[i:i + L].astype(np.int64) for i in ix])
        y = np.stack([data[i + 1:i + 1 + L].astype(np.int64) for i in ix])
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="folder holding tokenfeed and tokenfeedd")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batches", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--sequence-length", type=int, default=2048)
    ap.add_argument("--keep", help="use this folder for the data root (kept)")
    args = ap.parse_args()
    B, L, N = args.batch_size, args.sequence_length, args.batches
    tokenfeed_bin, tokenfeedd_bin = find("tokenfeed", args.bin), find("tokenfeedd", args.bin)

    with served_corpus(tokenfeed_bin, tokenfeedd_bin, L, args.keep, "tf-bench-py-") as (sock, raw, _):
        variants = [("tokenfeed client, zero-copy views", False, False),
                    ("tokenfeed client, int64 x and y", True, False),
                    ("tokenfeed client, int64 x and y + position ids + varlen cu_seqlens", True, True)]
        results: dict[str, list[float]] = {name: [] for name, _, _ in variants}
        results["memmap baseline (nanoGPT get_batch, int64 x and y)"] = []
        first_batch: list[float] = []
        for run in range(args.runs):
            for k, (name, int64, metadata) in enumerate(variants):
                tps, first = run_client(sock, f"bench-{run}-{k}", B, N, int64=int64, metadata=metadata)
                results[name].append(tps)
                first_batch.append(first)
            results["memmap baseline (nanoGPT get_batch, int64 x and y)"].append(run_memmap(raw, B, L, N, seed=run))
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1] / 1e6:.1f}M tok/s" for k, v in results.items()), file=sys.stderr)

    base = statistics.median(results["memmap baseline (nanoGPT get_batch, int64 x and y)"])
    print(f"B = {B}, L = {L}, {N} batches a run, median of {args.runs} runs; tokenfeedd = {tokenfeedd_bin}\n")
    print("| loader | tokens/s (median) | range | vs memmap |")
    print("|---|---:|---:|---:|")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"| {name} | {med / 1e6:.1f} M | {min(values) / 1e6:.1f}–{max(values) / 1e6:.1f} M | {med / base:.2f}× |")
    print(f"\nfirst batch after connecting (median): {statistics.median(first_batch) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
