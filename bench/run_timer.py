#!/usr/bin/env python3
"""Interleaved wall-clock timer for bench/run.sh.

  run_timer.py -n RUNS --label A CMD_A --label B CMD_B [--label C CMD_C ...]

Runs CMD_A, CMD_B, CMD_C, ..., CMD_A, CMD_B, ... (each through bash -c,
output discarded), after one warm-up round, and prints each command's
median/min/max wall time, then for every pair the median of the per-round
ratios (so that drift of a shared, loaded machine cancels out) and the
ratio of the medians.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--label", nargs=2, action="append", metavar=("LABEL", "CMD"), required=True)
    a = ap.parse_args()
    times = [[] for _ in a.label]
    for i in range(a.n + 1):  # one warm-up round
        for k, (label, cmd) in enumerate(a.label):
            t0 = time.monotonic()
            p = subprocess.run(["bash", "-c", "exec " + cmd], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            t1 = time.monotonic()
            if p.returncode != 0:
                print("  ! %s exited %d: %s" % (label, p.returncode,
                                                p.stderr.decode(errors="replace").strip()),
                      file=sys.stderr)
                sys.exit(1)
            if i > 0:
                times[k].append(t1 - t0)
    print("load average (1/5/15 min) at the end: %s" % " ".join("%.1f" % x for x in os.getloadavg()))
    for (label, _), ts in zip(a.label, times):
        print("%-34s median %7.1f ms  (min %7.1f, max %7.1f, n=%d)" % (
            label, 1e3 * statistics.median(ts), 1e3 * min(ts), 1e3 * max(ts), len(ts)))
    for x in range(len(a.label)):
        for y in range(x + 1, len(a.label)):
            r = [p / q for p, q in zip(times[x], times[y])]
            print("ratio %s / %s: pairwise median %.2f (min %.2f, max %.2f); medians %.2f" % (
                a.label[x][0], a.label[y][0], statistics.median(r), min(r), max(r),
                statistics.median(times[x]) / statistics.median(times[y])))


if __name__ == "__main__":
    main()
