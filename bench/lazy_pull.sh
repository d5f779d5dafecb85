#!/usr/bin/env bash
# Lazy pulls: running a ~300 MB image straight from a registry, reading one
# 1 MiB file, against pulling it whole first (strata pull, and podman pull
# when podman is installed), through Debian's docker-registry on 127.0.0.1.
#
#   bench/lazy_pull.sh [BUILD_DIR]   (as root, inside a network namespace of
#                                     its own: unshare -n; RUNS=3,
#                                     DATA=/var/tmp/strata-bench-lazy-pull)
#
# The image: busybox + one zstd:chunked layer of 300 files of 1 MiB of random
# bytes (pushed with --compression zstd). Bytes transferred are the
# registry's own count: the sizes of its access log's responses (HTTP bodies;
# headers not counted), summed over each step. Figures, medians of RUNS runs,
# each on an empty store:
#   lazy run     strata run --rm --lazy REG/IMAGE sha256sum /data/f150
#   rest         strata pull REG/IMAGE after it (the missing bytes)
#   full         strata pull REG/IMAGE + strata run --rm (the same read)
#   podman       podman pull + podman run --rm --network none (runc, cgroupfs and
#                ulimits root here can set: ../shared/peers/README.md; the same read)
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "bench/lazy_pull.sh: needs root" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "${1:-$HERE/../build}" && pwd)
S=$BUILD/cli/strata
RUNS=${RUNS:-3}
DATA=${DATA:-/var/tmp/strata-bench-lazy-pull}
mkdir -p "$DATA"
ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

. "$HERE/../tests/support/docker_registry.sh"
rm -rf "$DATA/registry"
registry_start "$DATA/registry"
trap 'registry_stop "$DATA/registry"' EXIT
# The access log (one line per request, with the body's size) is the count.
registry_stop "$DATA/registry"
sed -i 's/^    disabled: true$/    disabled: false/; s/^  level: error$/  level: info/' "$DATA/registry/config.yml"
registry_spawn "$DATA/registry"
LOG=$DATA/registry/log
served() { # bytes of response bodies logged since line $1
  tail -n +"$(( $1 + 1 ))" "$LOG" | awk '/ HTTP\/1\.[01]" [0-9]+ [0-9]+ / {
      for (i = 1; i <= NF; i++) if ($i ~ /HTTP\/1\.[01]"$/) { n += $(i + 2); break } }
    END { print n + 0 }'
}
lines() { wc -l < "$LOG"; }

export STRATA_ROOT=$DATA/src
"$S" inspect busybox >/dev/null 2>&1 || "$S" bootstrap busybox >/dev/null
mkdir -p "$DATA/ctx"
cat > "$DATA/ctx/Dockerfile" <<'DF'
FROM busybox
RUN mkdir /data && for i in $(seq 1 300); do dd if=/dev/urandom of=/data/f$i bs=1M count=1 2>/dev/null; done
DF
"$S" inspect lazy-pull-bench >/dev/null 2>&1 ||
  "$S" build -q --compression zstd -t lazy-pull-bench "$DATA/ctx" >/dev/null
"$S" push -q --compression zstd lazy-pull-bench "$REG/bench/lazy:1" >/dev/null
IMG=$REG/bench/lazy:1
size=$("$S" inspect --format json lazy-pull-bench | python3 -c 'import json,sys
print(sum(l["size"] for l in json.load(sys.stdin)[0]["Manifest"]["layers"]))')
want=$("$S" run --rm lazy-pull-bench sha256sum /data/f150 | cut -d' ' -f1)
check() { [ "$(cut -d' ' -f1 "$DATA/out")" = "$want" ] || { echo "wrong bytes: $(cat "$DATA/out")" >&2; exit 1; }; }
podman_ok=0
command -v podman >/dev/null 2>&1 && podman_ok=1
# podman's own storage for the benchmark, emptied before each pull: nothing
# of another image (or an earlier run) shared.
pod() { podman --root "$DATA/podman/root" --runroot "$DATA/podman/run" --runtime runc --cgroup-manager cgroupfs "$@"; }

echo "date: $(date -u +%FT%TZ)  load: $(cut -d' ' -f1-3 /proc/loadavg)  runs: $RUNS  layers: $size bytes"
: > "$DATA/t"
for _ in $(seq "$RUNS"); do
  export STRATA_ROOT=$DATA/run
  rm -rf "$STRATA_ROOT"
  n=$(lines); t0=$(ms)
  "$S" run --rm --lazy "$IMG" sha256sum /data/f150 >"$DATA/out" 2>/dev/null
  t1=$(ms); check; lazy_b=$(served "$n")
  n=$(lines); t2=$(ms)
  "$S" pull -q "$IMG" >/dev/null
  t3=$(ms); rest_b=$(served "$n")
  rm -rf "$STRATA_ROOT"
  n=$(lines); t4=$(ms)
  "$S" pull -q "$IMG" >/dev/null && "$S" run --rm "$IMG" sha256sum /data/f150 >"$DATA/out"
  t5=$(ms); check; full_b=$(served "$n")
  pod_ms=0 pod_b=0
  if [ "$podman_ok" = 1 ]; then
    pod rmi -a -f >/dev/null 2>&1 || true
    rm -rf "$DATA/podman"
    n=$(lines); t6=$(ms)
    pod pull -q --tls-verify=false "$IMG" >/dev/null &&
      pod run --rm --network none --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 "$IMG" sha256sum /data/f150 >"$DATA/out"
    t7=$(ms); check; pod_b=$(served "$n"); pod_ms=$((t7 - t6))
    pod rmi -a -f >/dev/null 2>&1 || true
  fi
  echo "$((t1 - t0)) $lazy_b $((t3 - t2)) $rest_b $((t5 - t4)) $full_b $pod_ms $pod_b" >> "$DATA/t"
done
col() { awk -v k="$1" '{print $k}' "$DATA/t" | median; }
pct() { python3 -c "print(round(100 * $1 / $size, 2))"; }
printf 'lazy run   %6d ms  %11d bytes (%s%% of the image)\n' "$(col 1)" "$(col 2)" "$(pct "$(col 2)")"
printf 'rest pull  %6d ms  %11d bytes (%s%%)\n' "$(col 3)" "$(col 4)" "$(pct "$(col 4)")"
printf 'full       %6d ms  %11d bytes (%s%%)  lazy/full time %s\n' "$(col 5)" "$(col 6)" "$(pct "$(col 6)")" \
  "$(python3 -c "print(round($(col 1) / $(col 5), 3))")"
if [ "$podman_ok" = 1 ]; then
  printf 'podman     %6d ms  %11d bytes (%s%%)  lazy/podman time %s\n' "$(col 7)" "$(col 8)" "$(pct "$(col 8)")" \
    "$(python3 -c "print(round($(col 1) / $(col 7), 3))")"
fi
rm -rf "$DATA/run"
[ "$podman_ok" = 1 ] && { pod rmi -a -f >/dev/null 2>&1 || true; rm -rf "$DATA/podman"; }
