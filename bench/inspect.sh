#!/bin/bash
# Inspect benchmark: `strata analyze`, `strata diff` and `strata ls -R` on
# images of N files (default 10,000 and 100,000), read straight from the
# layer blobs. Reports the median wall time and peak RSS (/usr/bin/time -v)
# of RUNS runs each, so that growth from 10k to 100k files can be read off.
#
#   bench/inspect.sh [N ...]      env: STRATA=path/to/strata RUNS=5 WORK=dir
#
# dive (the peer for analyze) is not packaged in Debian 12 and nothing may be
# downloaded here, so it is not run; see bench/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
STRATA=${STRATA:-$here/../build/cli/strata}
RUNS=${RUNS:-5}
WORK=${WORK:-${TMPDIR:-/tmp}/strata-bench-inspect}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000)

rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
store="$WORK/store"

# Runs a command RUNS times; prints "median_seconds median_maxrss_MB".
measure() {
    local times=() cpus=() rss=() i rc t u s m
    for ((i = 0; i < RUNS; i++)); do
        rc=0
        /usr/bin/time -f '%e %U %S %M' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || rc=$?
        # diff exits 1 when the trees differ: that is its answer, not a failure.
        if [ "$rc" -gt 1 ]; then
            echo "failed ($rc): $*" >&2
            cat "$WORK/err" >&2
            exit 1
        fi
        read -r t u s m < <(tail -1 "$WORK/time")
        times+=("$t")
        cpus+=("$(python3 -c "print($u + $s)")")
        rss+=("$m")
    done
    python3 - "${times[*]}" "${cpus[*]}" "${rss[*]}" <<'PY'
import statistics, sys
t = [float(x) for x in sys.argv[1].split()]
c = [float(x) for x in sys.argv[2].split()]
m = [float(x) / 1024 for x in sys.argv[3].split()]
print(f"{statistics.median(t):.2f} {statistics.median(c):.2f} {statistics.median(m):.1f} {min(t):.2f} {max(t):.2f}")
PY
}

echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; wall times suffer when it is high, CPU times (user+sys) do not"
printf '%-8s %-38s %8s %8s %8s %14s\n' files command wall_s cpu_s rss_MB wall_min..max
for n in "${sizes[@]}"; do
    python3 "$here/inspect_mkimage.py" "$n" "$WORK/img-$n.tar" "bench:$n"
    "$STRATA" --root "$store" load -q -i "$WORK/img-$n.tar"
    img="bench:$n"
    for cmd in "analyze $img" "diff --merged $img@1 $img" "diff --semantic $img $img" "ls -R $img" "ls -R -l $img"; do
        # shellcheck disable=SC2086
        read -r med cpu mem lo hi < <(measure "$STRATA" --root "$store" $cmd)
        printf '%-8s %-38s %8s %8s %8s %14s\n' "$n" "${cmd//$img/IMG}" "$med" "$cpu" "$mem" "$lo..$hi"
    done
done
