#!/usr/bin/env python3
"""What the metrics cost the serving: one bare Python consumer of tokenfeedd (the ``bare recv_into loop``
of bench/python_client.py: rank 0 of 1, 4 credits, no decoding), timed while a scraper process idles
("alone") and while it scrapes ``GET /metrics`` (back to back, or every ``--interval`` seconds), alternating
in each run; and what a scrape costs
(latency, bytes) with many jobs known to the daemon.

Usage:
    python3 bench/metrics_scrape.py [--bin DIR] [--runs 5] [--batches 1500] [--batch-size 8]
                                    [--sequence-length 2048] [--jobs 64] [--interval 0]

``--jobs`` sessions of distinct jobs (8 batches each) are served first, so each scrape carries their
per-job series (stream position, stage progress, per-stage dataset tokens, epochs). Prints a Markdown
table: median tokens/s of the consumer with and without the scraper and their ratio, scrapes per
second, median and p99 scrape latency, and the size of one scrape.
"""

from __future__ import annotations

import multiprocessing
import socket
import statistics
import sys
import time
import urllib.request

from python_client import consumer_arguments, find, run_bare, served_corpus


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scraper(port: int, stop, latencies, interval: float) -> None:
    while not stop.wait(interval):
        t0 = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
            answer.read()
        latencies.append(time.perf_counter() - t0)


def main() -> None:
    ap = consumer_arguments(__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=64)
    ap.add_argument("--interval", type=float, default=0.0, help="seconds between scrapes (0: back to back)")
    args = ap.parse_args()
    B, L, N = args.batch_size, args.sequence_length, args.batches
    tokenfeed_bin, tokenfeedd_bin = find("tokenfeed", args.bin), find("tokenfeedd", args.bin)
    port = free_port()
    with served_corpus(tokenfeed_bin, tokenfeedd_bin, L, None, "tf-bench-metrics-", ["--metrics-listen", f"127.0.0.1:{port}"]) as (sock, _, _):
        for j in range(args.jobs):
            run_bare(sock, f"warm-{j}", B, 8)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
            size = len(answer.read())
        alone, scraped, rates, latencies_all = [], [], [], []
        for run in range(args.runs):
            # Both variants run the same scraper process; "alone" keeps it idle (it never scrapes), so the
            # difference is the scrapes, not the extra processes.
            for interval, out in ((3600.0, alone), (args.interval, scraped)):
                with multiprocessing.Manager() as manager:
                    stop, latencies = manager.Event(), manager.list()
                    p = multiprocessing.Process(target=scraper, args=(port, stop, latencies, interval))
                    p.start()
                    time.sleep(0.5)
                    t0 = time.perf_counter()
                    before = len(latencies)
                    out.append(run_bare(sock, f"run-{run}-{interval}", B, N)[0])
                    if out is scraped:
                        rates.append((len(latencies) - before) / (time.perf_counter() - t0))
                    stop.set()
                    p.join()
                    latencies_all += list(latencies)
            print(f"run {run + 1}: alone {alone[-1] / 1e6:.1f}M tok/s, scraped {scraped[-1] / 1e6:.1f}M tok/s, "
                  f"{rates[-1]:.1f} scrapes/s", file=sys.stderr)
    latencies_all.sort()
    a, s = statistics.median(alone), statistics.median(scraped)
    print(f"B = {B}, L = {L}, {N} batches a run, {args.jobs} other jobs known, median of {args.runs} runs; tokenfeedd = {tokenfeedd_bin}\n")
    print("| consumer | tokens/s (median) | range | vs alone |")
    print("|---|---:|---:|---:|")
    print(f"| alone | {a / 1e6:.1f} M | {min(alone) / 1e6:.1f}–{max(alone) / 1e6:.1f} M | 1.00× |")
    how = "back to back" if args.interval == 0 else f"every {args.interval:g} s"
    print(f"| while GET /metrics is scraped {how} ({statistics.median(rates):.1f} scrapes/s) | {s / 1e6:.1f} M | "
          f"{min(scraped) / 1e6:.1f}–{max(scraped) / 1e6:.1f} M | {s / a:.2f}× |")
    print(f"\none scrape: {size:,} bytes; latency median {statistics.median(latencies_all) * 1e3:.1f} ms, "
          f"p99 {latencies_all[int(0.99 * (len(latencies_all) - 1))] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
