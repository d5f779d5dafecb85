#!/usr/bin/env bash
# Remote build cache: a build on a clean store (a second machine) that takes
# every step from a registry cache, against the same build run cold, and
# against buildah doing the same (`buildah build --layers --cache-to/
# --cache-from`, its registry cache, vfs... overlay store) — all through one
# docker-registry on 127.0.0.1, in one run, alternating (abtime.py).
#
#   bench/build-cache.sh [BUILD_DIR] [RUNS]
#
# Workload: FROM REG/busybox (pulled into the empty store each run), COPY a
# 30 MB context (gen-tree.py: 2000 small files + 2 x 10 MiB), three RUNs that
# compute (a shell loop of 10^6 iterations, a checksum of the context, 20 MiB written).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-$here/../build}
RUNS=${2:-3}
STRATA=$(cd "$BUILD" && pwd)/cli/strata
ABTIME=${ABTIME:-/work/shared/peers/abtime.py}
WORK=${BENCH_DIR:-/var/tmp/strata-bench-build-cache}
for tool in docker-registry python3 buildah; do
  command -v $tool >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
rm -rf "$WORK"; mkdir -p "$WORK"
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
unset SOURCE_DATE_EPOCH

. "$here/../tests/support/docker_registry.sh"
registry_start "$WORK/registry" || exit 1
trap 'registry_stop "$WORK/registry"' EXIT

# The base, in the registry (strata pushes its bootstrapped busybox).
STRATA_ROOT=$WORK/seed "$STRATA" bootstrap busybox >/dev/null
STRATA_ROOT=$WORK/seed "$STRATA" push -q busybox "$REG/busybox:latest" >/dev/null

CTX=$WORK/ctx
python3 "$here/gen-tree.py" "$CTX/tree" --small 2000 --big 2 --big-mb 10 >/dev/null
cat >"$CTX/Dockerfile" <<EOF
FROM $REG/busybox:latest
COPY tree /tree
RUN i=0; while [ \$i -lt 1000000 ]; do i=\$((i+1)); done; echo \$i >/loop
RUN find /tree -type f | sort | xargs cat | sha256sum >/tree.sum
RUN dd if=/dev/urandom of=/data bs=1M count=20 2>/dev/null
EOF

bah() { echo "buildah --root $WORK/bah-root --runroot $WORK/bah-run --storage-driver overlay"; }
BAH=$(bah)
SB="STRATA_ROOT=$WORK/s $STRATA build --progress quiet -t app"
BB="$BAH build --isolation chroot --layers --tls-verify=false -q -t app"
# The caches, made once by a cold build each.
eval "STRATA_ROOT=$WORK/s0 $STRATA build --progress quiet -t app --cache-to type=registry,ref=$REG/cache/strata:1,mode=max $CTX" >/dev/null
$BAH build --isolation chroot --layers --tls-verify=false -q -t app --cache-to "$REG/cache/buildah" "$CTX" >/dev/null
wipe_s="rm -rf $WORK/s"
wipe_b="$BAH rm -a >/dev/null 2>&1 || true; $BAH rmi -a -f >/dev/null 2>&1 || true"

# Check once that both cache-from builds take every step from the cache.
rm -rf "$WORK/s"
ran=$(eval "STRATA_ROOT=$WORK/s $STRATA build --progress plain -t app --cache-from type=registry,ref=$REG/cache/strata:1 $CTX" 2>&1 | grep -c ' running: ' || true)
eval "$wipe_b"
hits=$($BAH build --isolation chroot --layers --tls-verify=false -t app --cache-from "$REG/cache/buildah" "$CTX" 2>&1 | grep -c 'Using cache' || true)
echo "check: strata --cache-from ran $ran steps; buildah --cache-from used its cache for $hits of 4 steps"

echo "== clean store: cold build vs build from the registry cache (strata)"
python3 "$ABTIME" -n "$RUNS" --prepare "$wipe_s" --prepare "$wipe_s" \
  --label strata-cold --label strata-cache-from \
  "$SB $CTX" "$SB --cache-from type=registry,ref=$REG/cache/strata:1 $CTX"
echo "== clean store, build from the registry cache: strata vs buildah"
python3 "$ABTIME" -n "$RUNS" --prepare "$wipe_s" --prepare "$wipe_b" \
  --label strata-cache-from --label buildah-cache-from \
  "$SB --cache-from type=registry,ref=$REG/cache/strata:1 $CTX" \
  "$BB --cache-from $REG/cache/buildah $CTX"
echo "== cold build: strata vs buildah (same machine, same registry base)"
python3 "$ABTIME" -n "$RUNS" --prepare "$wipe_s" --prepare "$wipe_b" \
  --label strata-cold --label buildah-cold \
  "$SB $CTX" "$BB $CTX"
uptime
