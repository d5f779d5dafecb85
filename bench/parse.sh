#!/usr/bin/env bash
# Parser benchmark: parse + expansion throughput of `strata parse` on generated
# Dockerfiles at 1x, 10x and 100x size (about 0.25, 2.5 and 25 MB), to show that the
# cost grows linearly, and a parse-only comparison with buildah (imagebuilder's copy
# of Docker's parser) on the same bytes.
#
#   bench/parse.sh [STRATA_BINARY]      (default: build/cli/strata)
#   RUNS=5 SIZES="1 10 100" bench/parse.sh
#
# Workloads (per size):
#   plan   strata parse FILE              parse, type, expand every word, plan stages,
#                                         print the plan (to /dev/null)
#   dump   strata parse --dump FILE       parse only, print BuildKit's AST dump
#   peer   FILE.broken = FILE + "ENV BROKEN" as its last line: both tools parse the
#          whole file and then fail with "ENV must have two arguments", so only
#          parsing is timed. buildah: `buildah build -f FILE.broken`; strata:
#          `strata parse --dump FILE.broken`. Skipped when buildah is missing.
# Each figure is the median wall time of RUNS runs (default 5); MB/s = size / median.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
strata=${1:-$here/build/cli/strata}
runs=${RUNS:-5}
sizes=${SIZES:-"1 10 100"}
work=$(mktemp -d /tmp/strata-parse-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

[ -x "$strata" ] || { echo "no strata binary at $strata (build first)" >&2; exit 2; }

exec python3 "$here/bench/parse_bench.py" "$strata" "$work" "$runs" "$sizes"
