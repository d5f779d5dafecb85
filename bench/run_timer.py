#!/usr/bin/env python3
"""Alternating A/B wall-clock timer for bench/run.sh.

  run_timer.py -n RUNS --label A CMD_A --label B CMD_B

Runs CMD_A, CMD_B, CMD_A, ... (each through bash -c, output discarded),
prints each one's median/min/max wall time and the median of the pairwise
ratios A/B, so that drift of a shared machine cancels out.
"""
import argparse
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
            rc = subprocess.run(["bash", "-c", "exec " + cmd], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL).returncode
            t1 = time.monotonic()
            if rc != 0:
                print("  ! %s exited %d" % (label, rc), file=sys.stderr)
                sys.exit(1)
            if i > 0:
                times[k].append(t1 - t0)
    for (label, _), ts in zip(a.label, times):
        print("%-30s median %.4f s  (min %.4f, max %.4f, n=%d)" % (
            label, statistics.median(ts), min(ts), max(ts), len(ts)))
    if len(times) == 2:
        r = [x / y for x, y in zip(times[0], times[1])]
        print("%-30s ratio %s / %s: median %.2f (min %.2f, max %.2f)" % (
            "", a.label[0][0], a.label[1][0], statistics.median(r), min(r), max(r)))


if __name__ == "__main__":
    main()
