#!/usr/bin/env python3
"""Summarise several runs of the ring micro-benchmarks.

Usage: python3 bench/micro/medians.py RUN1.txt RUN2.txt ...
Each file is the text output of
  swift package --package-path bench/micro --scratch-path .build-bench benchmark --no-progress
Prints a Markdown table with one row per benchmark pair ("ring: X" and its baseline "mutex: X"):
the median over the runs of each one's p50 wall-clock time per item (reported in whole
nanoseconds, which resolves better than the throughput column's rounded K/M), the range of those
p50s over the runs, the items per second the median means, and the ring's speed relative to the
baseline (mutex time ÷ ring time).
"""
import re
import statistics
import sys

def p50_nanoseconds(path):
    """Maps benchmark name -> p50 wall-clock nanoseconds per item in one run's output."""
    result, name = {}, None
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if re.match(r"^(ring|mutex): ", line):
            name = line.strip()
        match = re.match(r"^│ Time \(wall clock\) \(ns\) \*?\s*│(.*)$", line)
        if match and name:
            cells = [c.strip() for c in match.group(1).split("│") if c.strip()]
            # columns: p0 p25 p50 p75 p90 p99 p100 samples
            result[name] = float(cells[2])
    return result


def human(value):
    for unit, factor in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= factor:
            return f"{value / factor:.3g} {unit}"
    return f"{value:.3g}"


runs = [p50_nanoseconds(path) for path in sys.argv[1:]]
names = {name for run in runs for name in run}
workloads = sorted({n.split(": ", 1)[1] for n in names})
print("| workload | runs | ring ns/item: median (range) | mutex ns/item: median (range)"
      " | ring items/s | mutex items/s | ring speed ÷ mutex |")
print("|---|---:|---:|---:|---:|---:|---:|")
for what in workloads:
    stats = {}
    for kind in ("ring", "mutex"):
        values = [run[f"{kind}: {what}"] for run in runs if f"{kind}: {what}" in run]
        stats[kind] = (statistics.median(values), min(values), max(values), len(values))
    ring, mutex = stats["ring"], stats["mutex"]
    print(f"| {what} | {ring[3]} | {ring[0]:.0f} ({ring[1]:.0f}–{ring[2]:.0f}) | {mutex[0]:.0f} ({mutex[1]:.0f}–{mutex[2]:.0f})"
          f" | {human(1e9 / ring[0])} | {human(1e9 / mutex[0])} | {mutex[0] / ring[0]:.2f}× |")
