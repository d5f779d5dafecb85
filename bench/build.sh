#!/usr/bin/env bash
# strata build against buildah (Debian's 1.28, `bud --isolation chroot
# --layers`, overlay storage driver) and docker build with BuildKit (Debian's
# docker.io 20.10, its own engine started here) on the same Dockerfiles and
# contexts, in one run, interleaved A B C A B C so that ratios hold on a noisy
# machine:
#   W1  ten RUN steps that create, change and delete files (cold, --no-cache)
#   W2  COPY . of 20,000 small files + 5 x 50 MiB, then one RUN (cold)
#   W3  multi-stage, COPY --from (cold)
#   W4  rebuild of W1 and of W2 with nothing changed (everything cached)
#   W5  rebuild of W2 after one small context file's content changed
# strata writes its default (gzip) layers, as the peers do;
# STRATA_COMPRESSION=zstd for zstd:chunked layers (a rebuild then reuses the
# unchanged files and their compressed frames).
# Usage (root): bench/build.sh [STRATA_BINARY] [RUNS]   (default build/cli/strata, 5)
# Work data goes to $BENCH_DATA (default /var/tmp/strata-bench-build).
# BuildKit runs in a Docker engine of the benchmark's own (data under
# $BENCH_DATA/docker, socket /run/strata-bench-docker/docker.sock, no bridge,
# no iptables), started here and stopped at the end; BENCH_DOCKER=0 leaves it
# out. The client is Debian's /usr/bin/docker (BuildKit built in).
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
DOCKER_CLI=/usr/bin/docker
DOCKER_RUN=/run/strata-bench-docker
if [ "${BENCH_DOCKER:-1}" != 0 ] && [ -x $DOCKER_CLI ] && command -v dockerd >/dev/null; then
  export DOCKER_HOST=unix://$DOCKER_RUN/docker.sock
  if ! $DOCKER_CLI info >/dev/null 2>&1; then
    mkdir -p "$DATA/docker" "$DOCKER_RUN"
    (cd / && setsid nohup dockerd --data-root "$DATA/docker" --exec-root "$DOCKER_RUN/exec" \
      --pidfile "$DOCKER_RUN/dockerd.pid" -H "$DOCKER_HOST" --iptables=false --ip6tables=false \
      --bridge=none --ip-masq=false >"$DATA/dockerd.log" 2>&1 </dev/null &)
    for _ in $(seq 1 120); do $DOCKER_CLI info >/dev/null 2>&1 && break; sleep 0.5; done
    STARTED_DOCKER=1
  fi
  if $DOCKER_CLI info >/dev/null 2>&1; then DOCKER=1; else echo "dockerd did not start (see $DATA/dockerd.log); BuildKit left out" >&2; fi
fi
stop_docker() {
  if [ "${STARTED_DOCKER:-0}" = 1 ] && [ -f "$DOCKER_RUN/dockerd.pid" ]; then
    local p; p=$(cat "$DOCKER_RUN/dockerd.pid"); kill "$p" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
  fi
}
trap stop_docker EXIT

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
  $DOCKER_CLI load -i "$DATA/busybox-base-docker.tar" >/dev/null
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
    strata) echo "$STRATA build --progress quiet ${STRATA_COMPRESSION:+--compression $STRATA_COMPRESSION} ${3:-} -t localhost/${2,,}:bench $c" ;;
    buildah) echo "$BAH bud --isolation chroot --layers --pull=never -q ${3:-} -t localhost/${2,,}:bench $c" ;;
    docker) echo "DOCKER_BUILDKIT=1 $DOCKER_CLI build --network=none -q ${3:-} -t ${2,,}:bench $c" ;;
  esac
}

# time_all TITLE PREP: RUNS rounds of every tool in turn (PREP before each
# build), then the medians, strata's median CPU time (user+sys) and the
# ratios strata/peer.
tools=(strata buildah)
[ $DOCKER = 0 ] || tools+=(docker)
time_all() {
  local title=$1 prep=$2 extra=${3:-} w=$4 i t0 t1 tool
  declare -A times=()
  local cpu=()
  for ((i = 0; i < RUNS; i++)); do
    for tool in "${tools[@]}"; do
      bash -c "$prep" >/dev/null 2>&1
      local c; c=$(cmd "$tool" "$w" "$extra")
      if [ "$tool" = strata ]; then c="/usr/bin/time -f '%U %S' -o $DATA/cpu $c"; fi
      t0=$(date +%s.%N); bash -c "$c" >/dev/null 2>"$DATA/err" || { cat "$DATA/err" >&2; exit 1; }; t1=$(date +%s.%N)
      times[$tool]+="$(echo "$t1 - $t0" | bc) "
      if [ "$tool" = strata ]; then cpu+=("$(awk '{print $1 + $2}' "$DATA/cpu")"); fi
    done
  done
  python3 - "$title" "${times[strata]}" "${times[buildah]}" "${times[docker]:-}" "${cpu[*]}" <<'PY'
import statistics, sys
title, s, b, d, cpu = sys.argv[1:]
med = lambda x: statistics.median(float(v) for v in x.split())
ms, mb, mc = med(s), med(b), med(cpu)
row = f"| {title} | {ms:.3f} s | {mb:.3f} s |"
row += f" {med(d):.3f} s |" if d.strip() else " - |"
row += f" {ms / mb:.2f}x |"
row += f" {ms / med(d):.2f}x |" if d.strip() else " - |"
row += f" {mc:.2f} s |"
print(row, flush=True)
PY
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $RUNS rounds, medians"
echo "| workload | strata | buildah | BuildKit | strata/buildah | strata/BuildKit | strata CPU |"
echo "|---|---|---|---|---|---|---|"
for w in W1 W2 W3; do
  time_all "$w cold (--no-cache)" "" --no-cache $w
done
for w in W1 W2; do
  for tool in "${tools[@]}"; do bash -c "$(cmd $tool $w)" >/dev/null 2>&1; done
  time_all "W4 $w rebuild, nothing changed" "" "" $w
done
cp -p "$F" "$DATA/f042.orig"
time_all "W5 W2 rebuild, one file changed" "echo \"edit \$(date +%s%N)\" >> $F" "" W2
cp -p "$DATA/f042.orig" "$F"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
