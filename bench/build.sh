#!/usr/bin/env bash
# strata build against buildah (Debian's 1.28, `bud --isolation chroot
# --layers`, overlay storage driver) on the same Dockerfiles and contexts, in
# one run, alternating A B A B so that a ratio holds on a noisy machine:
#   W1  ten RUN steps that create, change and delete files (cold, --no-cache)
#   W2  COPY . of 20,000 small files + 5 x 50 MiB, then one RUN (cold)
#   W3  multi-stage, COPY --from (cold)
#   W4  rebuild of W1 and of W2 with nothing changed (everything cached)
#   W5  rebuild of W2 after one small context file's content changed
# Usage (root): bench/build.sh [STRATA_BINARY] [RUNS]   (default build/cli/strata, 5)
# Work data goes to $BENCH_DATA (default /var/tmp/strata-bench-build).
# docker build (BuildKit) is measured too when a Docker daemon answers
# (`docker info`); start one with ../shared/peers/lib.sh docker_up.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
STRATA=$(realpath "${1:-$HERE/../build/cli/strata}")
RUNS=${2:-5}
DATA=${BENCH_DATA:-/var/tmp/strata-bench-build}
WL=$HERE/build-workloads
[ "$(id -u)" -eq 0 ] || { echo "bench/build.sh needs root" >&2; exit 1; }
command -v buildah >/dev/null || { echo "needs buildah (apt-get install buildah)" >&2; exit 1; }

mkdir -p "$DATA"
export STRATA_ROOT=$DATA/strata
# buildah: its own store, no registry lookups (everything is local).
cat >"$DATA/registries.conf" <<'EOF'
unqualified-search-registries = []
EOF
export CONTAINERS_REGISTRIES_CONF=$DATA/registries.conf
BAH="buildah --root $DATA/buildah/root --runroot $DATA/buildah/run --storage-driver overlay"
DOCKER=0
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then DOCKER=1; fi

# The same busybox base for every tool, made by strata and exported.
"$STRATA" bootstrap busybox >/dev/null
"$STRATA" tag busybox:latest localhost/busybox-base:latest
"$STRATA" save localhost/busybox-base:latest --format oci -o "$DATA/busybox-base.tar"
if ! $BAH inspect localhost/busybox-base:latest >/dev/null 2>&1; then
  id=$($BAH pull -q "oci-archive:$DATA/busybox-base.tar")
  $BAH tag "$id" localhost/busybox-base:latest
fi
if [ $DOCKER = 1 ]; then
  "$STRATA" save localhost/busybox-base:latest --format docker -o "$DATA/busybox-base-docker.tar"
  docker load -i "$DATA/busybox-base-docker.tar" >/dev/null
fi

# Contexts.
for w in W1 W3; do
  mkdir -p "$DATA/ctx/$w" && cp "$WL/$w.Dockerfile" "$DATA/ctx/$w/Dockerfile"
done
if [ ! -f "$DATA/ctx/W2/.complete" ]; then
  python3 "$HERE/gen-tree.py" "$DATA/ctx/W2"
  touch "$DATA/ctx/W2/.complete"
fi
cp "$WL/W2.Dockerfile" "$DATA/ctx/W2/Dockerfile"
printf '.complete\n' >"$DATA/ctx/W2/.dockerignore"
F=$DATA/ctx/W2/small/d07/s03/f042.txt

cmd() { # cmd TOOL WORKLOAD [--no-cache]
  local c=$DATA/ctx/$2
  case $1 in
    strata) echo "$STRATA build --progress quiet ${3:-} -t localhost/${2,,}:bench $c" ;;
    buildah) echo "$BAH bud --isolation chroot --layers --pull=never -q ${3:-} -t localhost/${2,,}:bench $c" ;;
    docker) echo "DOCKER_BUILDKIT=1 docker build --network=none -q ${3:-} -t ${2,,}:bench $c" ;;
  esac
}

# time_pair TITLE PREP CMD_A CMD_B: RUNS alternating runs of A and B (PREP
# before each run), prints medians and the ratio A/B.
results=()
time_pair() {
  local title=$1 prep=$2 a=$3 b=$4 labela=$5 labelb=$6 ta=() tb=() i t0 t1
  for ((i = 0; i < RUNS; i++)); do
    bash -c "$prep" >/dev/null 2>&1
    t0=$(date +%s.%N); bash -c "$a" >/dev/null 2>"$DATA/err" || { cat "$DATA/err" >&2; exit 1; }; t1=$(date +%s.%N)
    ta+=("$(echo "$t1 - $t0" | bc)")
    bash -c "$prep" >/dev/null 2>&1
    t0=$(date +%s.%N); bash -c "$b" >/dev/null 2>"$DATA/err" || { cat "$DATA/err" >&2; exit 1; }; t1=$(date +%s.%N)
    tb+=("$(echo "$t1 - $t0" | bc)")
  done
  local line
  line=$(python3 - "$title" "$labela" "$labelb" "${ta[*]}" "${tb[*]}" <<'EOF'
import statistics, sys
title, la, lb, a, b = sys.argv[1:]
a = [float(x) for x in a.split()]; b = [float(x) for x in b.split()]
ma, mb = statistics.median(a), statistics.median(b)
print(f"| {title} | {la} {ma:.3f} s | {lb} {mb:.3f} s | {ma / mb:.2f}x |")
EOF
)
  echo "$line"
  results+=("$line")
}

peers=(buildah)
[ $DOCKER = 0 ] || peers+=(docker)
echo "| workload | strata (median) | peer (median) | strata/peer |"
echo "|---|---|---|---|"
for p in "${peers[@]}"; do
  for w in W1 W2 W3; do
    time_pair "$w cold (--no-cache)" "" "$(cmd strata $w --no-cache)" "$(cmd $p $w --no-cache)" strata $p
  done
  for w in W1 W2; do
    bash -c "$(cmd strata $w)" >/dev/null 2>&1; bash -c "$(cmd $p $w)" >/dev/null 2>&1
    time_pair "W4 $w rebuild, nothing changed" "" "$(cmd strata $w)" "$(cmd $p $w)" strata $p
  done
  cp -p "$F" "$DATA/f042.orig"
  time_pair "W5 W2 rebuild, one file changed" "echo \"edit \$(date +%s%N)\" >> $F" \
    "$(cmd strata W2)" "$(cmd $p W2)" strata $p
  cp -p "$DATA/f042.orig" "$F"
done
