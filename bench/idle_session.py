#!/usr/bin/env python3
"""What idle sessions cost the daemon: wake-ups per second and CPU (issue 14, point 2).

Usage:
    python3 bench/idle_session.py [--bin DIR] [--runs 3] [--seconds 10] [--sessions 1] [--keep DIR]

It imports the corpus fixture into shards and serves a one-stage concat curriculum with ``tokenfeedd``
(from ``--bin``, ``$TOKENFEED_BIN`` or PATH; default options), exactly as bench/python_client.py does.
Then, for each of ``--runs`` runs, it measures the daemon process over ``--seconds`` seconds in three
states, each on fresh connections (``--sessions`` of them, rank r of ``--sessions``, 8 rows of 2,048
tokens):

- ``no session``: the daemon alone, nothing connected (its own background work: the baseline);
- ``asks for no batches``: sessions whose Hello grants 0 credits and that never send a Credit (a
  trainer connected and not asking yet);
- ``holds credits, not reading``: sessions whose Hello grants 100,000 credits and that never read a
  byte: the daemon fills their sockets and rings, then has nothing it can do. Measured after a 3 s
  settling time.

Wake-ups are the sum over the daemon's threads (``/proc/PID/task/*/status``) of voluntary and
non-voluntary context switches during the window, per second; CPU is ``utime + stime`` of
``/proc/PID/stat`` over the window, as a percentage of one core. Prints a Markdown table of the
medians over the runs and their ranges.
"""

from __future__ import annotations

import os
import pathlib
import socket
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from python_client import consumer_arguments, find, served_corpus, P  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def switches(pid: int) -> int:
    """Voluntary + non-voluntary context switches of every live thread of `pid`."""
    total = 0
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that ended meanwhile
    return total


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (all threads), in seconds."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def measure(pid: int, seconds: float) -> tuple[float, float]:
    """(wake-ups per second, CPU % of a core) of `pid` over `seconds`."""
    s0, c0, t0 = switches(pid), cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    s1, c1, t1 = switches(pid), cpu_seconds(pid), time.monotonic()
    return (s1 - s0) / (t1 - t0), 100 * (c1 - c0) / (t1 - t0)


def open_sessions(sock: str, count: int, credits: int, job: str) -> list[socket.socket]:
    """`count` sessions (ranks 0 ..< count of `count`), each past its Welcome."""
    held = []
    for rank in range(count):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        s.sendall(P.Hello(rank, count, 8, credits, None, job).encode(1))
        header = b""
        while len(header) < 8:  # the Welcome's first bytes: the session is set up
            chunk = s.recv(8 - len(header))
            if not chunk:
                sys.exit("the daemon closed a session at its Hello")
            header += chunk
        held.append(s)
    return held


def main() -> None:
    ap = consumer_arguments(__doc__.split("\n\n")[0])
    ap.set_defaults(runs=3, sequence_length=2048)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--sessions", type=int, default=1)
    ap.add_argument("--keep", help="use this folder for the data root (kept)")
    args = ap.parse_args()
    tokenfeed_bin, tokenfeedd_bin = find("tokenfeed", args.bin), find("tokenfeedd", args.bin)
    states = ["no session", "asks for no batches", "holds credits, not reading"]
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in states}
    with served_corpus(tokenfeed_bin, tokenfeedd_bin, args.sequence_length, args.keep, "tf-bench-idle-") as (sock, _, daemon):
        time.sleep(2)  # start-up work (the startup shard check, the background count) settles
        for run in range(args.runs):
            results["no session"].append(measure(daemon.pid, args.seconds))
            held = open_sessions(sock, args.sessions, 0, f"idle-nocredit-{run}")
            time.sleep(0.5)
            results["asks for no batches"].append(measure(daemon.pid, args.seconds))
            for s in held:
                s.close()
            held = open_sessions(sock, args.sessions, 100_000, f"idle-unread-{run}")
            time.sleep(3)
            results["holds credits, not reading"].append(measure(daemon.pid, args.seconds))
            for s in held:
                s.close()
            time.sleep(0.5)
            print(f"run {run + 1}: " + "; ".join(f"{name}: {r[-1][0]:.1f}/s {r[-1][1]:.2f} %" for name, r in results.items()),
                  file=sys.stderr, flush=True)
    print(f"| daemon state ({args.sessions} session{'s' if args.sessions != 1 else ''}, {args.seconds:g} s windows, "
          f"{args.runs} runs) | wake-ups/s: median (range) | CPU % of a core: median (range) |")
    print("|---|---:|---:|")
    for name, values in results.items():
        w = [v[0] for v in values]
        c = [v[1] for v in values]
        print(f"| {name} | {statistics.median(w):.1f} ({min(w):.1f}–{max(w):.1f}) "
              f"| {statistics.median(c):.2f} ({min(c):.2f}–{max(c):.2f}) |")


if __name__ == "__main__":
    main()
