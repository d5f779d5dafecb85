#!/usr/bin/env bash
# Containers that last (issue #15): start/stop latency, ps with 200
# containers, and the memory of one idle container's supervision.
#
#   bench/containers.sh [BUILD_DIR] [RUNS]      (root; RUNS defaults to 10)
#
# 1. `run -d --rm busybox sleep 1000` + `stop -t 0` as one cycle, for strata,
#    podman and docker (same busybox image, made by `strata bootstrap` and
#    loaded into the others), interleaved A B C A B C ... (bench/run_timer.py:
#    medians and ratios), against the floor `unshare --fork --pid --mount
#    --net --uts --ipc true`.
# 2. `ps -a` with 200 created containers in each tool's store.
# 3. RSS of one idle container's monitor: strata-monitor against conmon
#    (podman) and containerd-shim-runc-v2 (docker).
# podman is installed from Debian's packages when missing; dockerd is
# started with scripts/dockerd.sh unless one runs. SKIP_PODMAN=1 /
# SKIP_DOCKER=1 leave one out.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
runs=${2:-10}
strata=$build/cli/strata
[ -x "$strata" ] || { echo "build first: $strata missing" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 2; }

work=$(mktemp -d /tmp/strata-bench-containers.XXXXXX)
started_docker=
podman=
cleanup() {
  set +e
  for id in $("$strata" ps -aq --no-trunc 2>/dev/null); do "$strata" rm -f "$id" >/dev/null 2>&1; done
  if [ -n "$podman" ]; then $podman rm -af >/dev/null 2>&1; $podman system reset --force >/dev/null 2>&1; fi
  if [ -n "$started_docker" ]; then
    docker rm -f $(docker ps -aq --filter label=strata-bench) >/dev/null 2>&1
    STRATA_DOCKER_DIR=$work/docker "$repo/scripts/dockerd.sh" down
  fi
  rm -rf "$work"
}
trap cleanup EXIT

export STRATA_ROOT=$work/store
"$strata" bootstrap busybox >/dev/null
"$strata" save busybox -o "$work/busybox.tar" --format docker
"$strata" unpack busybox "$work/rootfs" >/dev/null
"$strata" run --rm busybox true # unpacks the snapshots

cycle() { # TOOL [FLAGS]: run -d --rm + stop -t 0 as one command
  echo "bash -c 'id=\$($1 run -d --rm $2 busybox sleep 1000) && $1 stop -t 0 \$id'"
}
timers=(--label "strata run -d + stop" "$(cycle "$strata" "--network none")"
        --label "unshare floor" "unshare --fork --pid --mount --net --uts --ipc $work/rootfs/bin/true")
pflags="--runtime runc --cgroup-manager cgroupfs --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 --network none"
if [ -z "${SKIP_PODMAN:-}" ]; then
  command -v podman >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman >/dev/null
  podman="podman --root $work/podman --runroot $work/podman-run --storage-driver overlay --events-backend file"
  $podman load -q -i "$work/busybox.tar" >/dev/null
  timers+=(--label "podman run -d + stop" "$(cycle "$podman" "$pflags")")
fi
if [ -z "${SKIP_DOCKER:-}" ] && command -v dockerd >/dev/null; then
  if ! docker info >/dev/null 2>&1; then
    STRATA_DOCKER_DIR=$work/docker "$repo/scripts/dockerd.sh" up
    started_docker=1
  fi
  docker load -q -i "$work/busybox.tar" >/dev/null
  timers+=(--label "docker run -d + stop" "$(cycle docker "--network none --label strata-bench=1")")
fi

echo "== run -d --rm busybox sleep 1000 + stop -t 0, $runs rounds"
python3 "$here/run_timer.py" -n "$runs" "${timers[@]}"

echo
echo "== ps -a with 200 containers"
for i in $(seq 200); do "$strata" create --network none busybox true >/dev/null; done
pt=(--label "strata ps -a" "$strata ps -a" --label "strata --help (its start-up)" "$strata --help")
if [ -n "$podman" ]; then
  for i in $(seq 200); do $podman create $pflags busybox true >/dev/null; done
  pt+=(--label "podman ps -a" "$podman ps -a")
fi
if docker info >/dev/null 2>&1 && [ -z "${SKIP_DOCKER:-}" ]; then
  for i in $(seq 200); do docker create --network none --label strata-bench=1 busybox true >/dev/null; done
  pt+=(--label "docker ps -a" "docker ps -a")
fi
python3 "$here/run_timer.py" -n "$runs" "${pt[@]}"

echo
echo "== RSS of one idle container's supervision (kB, VmRSS)"
id=$("$strata" run -d --network none busybox sleep 1000)
sleep 1
m=$(cat "$STRATA_ROOT/containers/$id/monitor.pid")
echo "  strata-monitor: $(awk '/VmRSS/ {print $2}' /proc/$m/status)"
if [ -n "$podman" ]; then
  pid=$($podman run -d $pflags busybox sleep 1000)
  sleep 1
  c=$(pgrep -f "conmon.*$pid" | head -1)
  echo "  conmon: $(awk '/VmRSS/ {print $2}' /proc/$c/status)"
fi
if docker info >/dev/null 2>&1 && [ -z "${SKIP_DOCKER:-}" ]; then
  did=$(docker run -d --network none --label strata-bench=1 busybox sleep 1000)
  sleep 1
  s=$(pgrep -f "containerd-shim.*$did" | head -1 || true)
  [ -n "$s" ] || s=$(pgrep -f containerd-shim | head -1)
  echo "  containerd-shim: $(awk '/VmRSS/ {print $2}' /proc/$s/status)"
fi
