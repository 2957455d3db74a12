#!/usr/bin/env python3
"""A well-behaved client's rate while other clients abuse the same daemon (issue 8, point 6).

Usage:
    python3 bench/abuse.py [--bin DIR] [--runs 5] [--batches 300] [--batch-size 8]
                           [--sequence-length 2048] [--only NAME,...] [--keep DIR]

It imports the corpus fixture into shards, serves a one-stage concat curriculum with ``tokenfeedd``
(from ``--bin``, ``$TOKENFEED_BIN`` or PATH; default limits, ``--preload-bytes 64MiB``) and, for each of ``--runs`` runs and
each scenario in turn, measures the *good client*: a fresh ``tokenfeed.Client`` (rank 0 of 1,
``--batch-size`` rows, 4 credits) that receives ``--batches`` batches after one warm-up batch and
hashes every one (tokens per second, ``B × L`` per batch). The scenario ``alone`` runs it with
nothing else connected; every other scenario first starts an abuser (a separate process, so that it
does not share the good client's interpreter), waits until it is in place, then measures:

- ``stalled``: 160 sessions (batch size 8, from 4 processes: the daemon lets one process set up 64
  sessions at once, ``--session-burst``) whose Hello grants 100,000 credits and that never read a
  byte; measured once the daemon has filled their rings and sockets and gone idle (at most 60 s:
  serving what 160 sessions asked for is work, their stalling afterwards must cost nothing);
- ``slow-readers``: 100 sessions (from 4 processes) that each read one batch a second;
- ``connections``: 250 idle connections (never a Hello; re-opened when the handshake timeout closes
  them) plus 20 more attempts a second that get ``busy``;
- ``handshake-stallers``: 100 connections that send half a Hello and stall (re-opened when closed);
- ``stats-flood``: 8 connections sending StatsRequests as fast as the daemon reads them, never
  reading an answer;
- ``memory-hogs``: a loop of Hellos with the largest batch size (refused before allocating) and of
  Hello + close cycles with batch size 1,024 (a ring mapped and freed, a packer started each time; the
  daemon admits 64 set-ups at once and then 16 a second per process, ``--session-rate``, and answers
  the rest ``busy``).

Every measured run must receive exactly the bytes of the run alone (same hashes, else it exits 1).
Prints a Markdown table: per scenario the median tokens/s over the runs, the range, and the ratio of
the alone median to it (issue 8 asks for at most 2×).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from python_client import find, served_corpus, tokenfeed  # noqa: E402

P = tokenfeed.protocol
SCENARIOS = ["stalled", "slow-readers", "connections", "handshake-stallers", "stats-flood", "memory-hogs"]


def connect(sock: str) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect(sock)
        s.settimeout(None)
        return s
    except OSError:
        s.close()
        return None


def closed(s: socket.socket) -> bool:
    """Whether the daemon closed `s` (reads and drops what it sent)."""
    try:
        while True:
            data = s.recv(65536, socket.MSG_DONTWAIT)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def hello(batch_size: int, credits: int, job: str) -> bytes:
    return P.Hello(0, 1, batch_size, credits, None, job).encode(1)


def in_processes(count: int) -> int:
    """Forks `count - 1` children (in the abuser's process group, killed with it); returns this
    process's index, 0 for the parent, which returns once every child has said it is in place (see `ready`)."""
    global _ready_pipe
    read_end, write_end = os.pipe()
    for index in range(1, count):
        if os.fork() == 0:
            os.close(read_end)
            _ready_pipe = write_end
            return index
    os.close(write_end)
    _ready_pipe = read_end
    return 0


_ready_pipe: int | None = None


def abuse(name: str, sock: str) -> None:
    """Runs scenario `name` against `sock` until killed; prints "ready" once in place."""
    held: list[socket.socket] = []
    index, processes = 0, 1

    def ready() -> None:
        if index > 0:                   # a child: tell the parent
            os.write(_ready_pipe, b"r")
            return
        for _ in range(processes - 1):  # the parent: wait for every child
            os.read(_ready_pipe, 1)
        print("ready", flush=True)

    if name == "stalled":
        processes = 4
        index = in_processes(processes)
        for i in range(index * 40, index * 40 + 40):
            s = connect(sock)
            if s:
                s.sendall(hello(8, 100_000, f"stalled{i}"))
                held.append(s)
        ready()
        while True:
            time.sleep(1)
    elif name == "slow-readers":
        processes = 4
        index = in_processes(processes)
        clients = [tokenfeed.Client(sock, 0, 1, 2, credits=1, job_id=f"slow{i}", timeout=60) for i in range(index * 25, index * 25 + 25)]
        ready()
        while True:
            t = time.monotonic()
            for c in clients:
                c.next()
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t)))
    elif name in ("connections", "handshake-stallers"):
        count = 250 if name == "connections" else 100
        half = hello(2, 1, "staller")[:30]
        announced = False
        while True:
            alive = []
            for s in held:
                if closed(s):
                    s.close()
                else:
                    alive.append(s)
            held = alive
            while len(held) < count:
                s = connect(sock)
                if not s:
                    break
                if name == "handshake-stallers":
                    s.sendall(half)
                held.append(s)
            if not announced:
                ready()
                announced = True
            if name == "connections":
                for _ in range(20):  # over the limit: busy
                    s = connect(sock)
                    if s:
                        s.close()
            time.sleep(1)
    elif name == "stats-flood":
        chunk = P.encode_stats_request(1) * 4096
        for _ in range(8):
            s = connect(sock)
            if s:
                s.setblocking(False)
                held.append(s)
        ready()
        while True:
            for s in held:
                try:
                    s.send(chunk)
                except (BlockingIOError, OSError):
                    pass
            time.sleep(0.01)
    elif name == "memory-hogs":
        ready()
        i = 0
        while True:
            i += 1
            s = connect(sock)
            if s:
                big = i % 2 == 0
                s.sendall(hello(P.MAX_BATCH_SIZE if big else 1024, 1, f"hog{i % 5}"))
                try:
                    s.settimeout(5)
                    s.recv(64)          # the Error (refused) or the start of the Welcome
                except OSError:
                    pass
                s.close()
    else:
        sys.exit(f"unknown scenario {name}")


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, limit: float = 60) -> float:
    """Waits until the daemon uses under 10 % of a core over a second (at most `limit` s); the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        before = cpu_seconds(pid)
        time.sleep(1)
        if cpu_seconds(pid) - before < 0.1:
            break
    return time.monotonic() - start


def measure(sock: str, job: str, B: int, batches: int) -> tuple[float, str]:
    """The good client: tokens/s over `batches` after one warm-up batch, and a hash of all it received."""
    digest = hashlib.sha256()
    with tokenfeed.Client(sock, 0, 1, B, credits=4, job_id=job, timeout=120) as c:
        first = c.next()
        digest.update(first.inputs.tobytes())
        L = first.sequence_length
        t0 = time.perf_counter()
        for _ in range(batches):
            b = c.next()
            digest.update(b.inputs.tobytes())
            digest.update(b.labels[:, -1].tobytes())
        t1 = time.perf_counter()
    return batches * B * L / (t1 - t0), digest.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="folder holding tokenfeed and tokenfeedd")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--sequence-length", type=int, default=2048)
    ap.add_argument("--only", help="comma-separated scenarios (default: all)")
    ap.add_argument("--keep", help="use this folder for the data root (kept)")
    ap.add_argument("--abuser", nargs=2, metavar=("SCENARIO", "SOCKET"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.abuser:
        abuse(*args.abuser)
        return
    B, L, N = args.batch_size, args.sequence_length, args.batches
    scenarios = args.only.split(",") if args.only else SCENARIOS
    tokenfeed_bin, tokenfeedd_bin = find("tokenfeed", args.bin), find("tokenfeedd", args.bin)

    results: dict[str, list[float]] = {name: [] for name in ["alone"] + scenarios}
    reference: str | None = None
    failed = False
    extra = ["--log-level", "warning", "--preload-bytes", "64MiB"]
    with served_corpus(tokenfeed_bin, tokenfeedd_bin, L, args.keep, "tf-bench-abuse-", extra) as (sock, _, daemon):
        for run in range(args.runs):
            for name in ["alone"] + scenarios:
                abuser = None
                if name != "alone":
                    abuser = subprocess.Popen([sys.executable, __file__, "--abuser", name, sock],
                                              stdout=subprocess.PIPE, text=True, start_new_session=True)
                    if abuser.stdout.readline().strip() != "ready":
                        sys.exit(f"the {name} abuser did not start")
                    time.sleep(1)
                    if name == "stalled":
                        print(f"run {run + 1}: stalled sessions served and idle after {settle(daemon.pid):.0f} s", file=sys.stderr)
                try:
                    tps, digest = measure(sock, f"good-{run}-{name}", B, N)
                finally:
                    if abuser:
                        os.killpg(abuser.pid, signal.SIGKILL)   # with the processes it forked
                        abuser.wait()
                reference = reference or digest
                if digest != reference:
                    print(f"run {run + 1}, {name}: the good client received other bytes than alone", file=sys.stderr)
                    failed = True
                results[name].append(tps)
                print(f"run {run + 1}: {name} {tps / 1e6:.1f}M tok/s", file=sys.stderr)
                time.sleep(1)   # let the daemon end the abuser's sessions
            if daemon.poll() is not None:
                sys.exit(f"tokenfeedd exited ({daemon.returncode})")

    alone = statistics.median(results["alone"])
    print(f"B = {B}, L = {L}, {N} batches a run, median of {args.runs} runs; tokenfeedd = {tokenfeedd_bin}\n")
    print("| scenario | good client tokens/s (median) | range | alone ÷ this |")
    print("|---|---:|---:|---:|")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"| {name} | {med / 1e6:.1f} M | {min(values) / 1e6:.1f}–{max(values) / 1e6:.1f} M | {alone / med:.2f}× |")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
