#!/usr/bin/env bash
# Container start-up benchmark: the time to start and finish `true` in a
# container.
#
#   bench/run.sh [BUILD_DIR] [RUNS]        (root; RUNS defaults to 30)
#
# 1. `strata run --rm --network none busybox true` (the real CLI over a store: image
#    resolution, overlay of the image's snapshots under a throwaway upper,
#    the runner) against the floor `unshare --fork --pid --mount --net --uts
#    --ipc true`, `podman run --rm` and `docker run --rm --network none`, on
#    the same busybox image: made by `strata bootstrap busybox`, saved with
#    `strata save` and loaded into podman and docker. The four alternate
#    A B C D A B C D ...; medians and pairwise ratios are printed.
# 2. CPU time of each (perf stat), and of `strata --help` (the binary's own
#    start-up), when perf is installed.
# 3. The runner alone (build/bench/strata-bench-run ROOTFS, no store, no
#    overlay) against the floor and against `runc run` on the same directory.
#
# 4. Rootless: `strata run --rm busybox true` as the test user strata-subuid
#    (subordinate ids mapped through newuidmap/newgidmap) and as nobody (the
#    user alone as root), each on a store of its own, against the floor as
#    that user, `unshare --user --map-root-user --fork --pid --mount --net
#    --uts --ipc true` (SKIP_ROOTLESS=1 leaves it out).
#
# podman is installed from Debian's packages when missing (apt-get); dockerd
# is started with scripts/dockerd.sh (no bridge, no iptables) unless one is
# already running, and stopped again when this script started it. Set
# SKIP_PODMAN=1 or SKIP_DOCKER=1 to leave one out.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
runs=${2:-30}
strata=$build/cli/strata
bin=$build/bench/strata-bench-run
for b in "$strata" "$bin"; do [ -x "$b" ] || { echo "build first: $b missing" >&2; exit 2; }; done
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 2; }

work=$(mktemp -d /tmp/strata-bench-run.XXXXXX)
started_docker=
cleanup() {
  if [ -n "$started_docker" ]; then STRATA_DOCKER_DIR=$work/docker "$repo/scripts/dockerd.sh" down; fi
  if [ -d "$work/podman" ]; then
    podman --root "$work/podman" --runroot "$work/podman-run" --storage-driver overlay \
      system reset --force >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# -- The image, in strata's store, then in podman's and docker's.
store=$work/store
export STRATA_ROOT=$store
"$strata" bootstrap busybox >/dev/null
"$strata" save busybox -o "$work/busybox.tar" --format docker

timers=(--label "strata run --rm" "$strata run --rm --network none busybox true"
        --label "unshare floor" "unshare --fork --pid --mount --net --uts --ipc $work/rootfs/bin/true")
"$strata" unpack busybox "$work/rootfs" >/dev/null

if [ -z "${SKIP_PODMAN:-}" ]; then
  if ! command -v podman >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends podman >/dev/null
  fi
  podman="podman --root $work/podman --runroot $work/podman-run --storage-driver overlay --events-backend file"
  $podman load -q -i "$work/busybox.tar" >/dev/null
  timers+=(--label "podman run --rm" "$podman run --rm --runtime runc --cgroup-manager cgroupfs \
--ulimit nofile=20000:20000 --ulimit nproc=4096:4096 --network none busybox true")
fi
if [ -z "${SKIP_DOCKER:-}" ] && command -v dockerd >/dev/null; then
  if ! docker info >/dev/null 2>&1; then
    STRATA_DOCKER_DIR=$work/docker "$repo/scripts/dockerd.sh" up
    started_docker=1
  fi
  docker load -q -i "$work/busybox.tar" >/dev/null
  timers+=(--label "docker run --rm" "docker run --rm --network none busybox true")
fi

echo "== strata run --rm against the floor and the peers, $runs rounds"
echo "   $("$strata" --version 2>/dev/null || echo strata), $(podman --version 2>/dev/null || true)," \
  "$(docker version --format 'docker {{.Server.Version}}' 2>/dev/null || true), $(runc --version | head -1)"
python3 "$here/run_timer.py" -n "$runs" "${timers[@]}"

if command -v perf >/dev/null; then
  # CPU time (user + system, children included) is steadier than wall time
  # on a loaded machine, and shows where strata run's time goes: starting
  # the strata binary itself (--help) against the rest.
  echo
  echo "== CPU time per command (perf stat task-clock, $runs runs each)"
  for c in "$strata run --rm --network none busybox true" "$strata --help" "$bin $work/rootfs /bin/true" \
           "unshare --fork --pid --mount --net --uts --ipc $work/rootfs/bin/true"; do
    ms=$(perf stat -r "$runs" -x, -e task-clock $c 2>&1 >/dev/null | awk -F, '/task-clock/ {print $1}')
    printf '  %7.2f ms  %s\n' "$ms" "${c#"$build"/}"
  done
fi

echo
echo "== the runner alone on a directory, $runs rounds"
rootfs=$work/rootfs
python3 "$here/run_timer.py" -n "$runs" \
  --label "strata runner" "$bin $rootfs /bin/true" \
  --label "strata runner --init" "$bin --init $rootfs /bin/true" \
  --label "unshare floor" "unshare --fork --pid --mount --net --uts --ipc $rootfs/bin/true"
if command -v runc >/dev/null; then
  # runc, the OCI runtime under docker and podman, on the same directory
  # (its default spec: same namespaces plus cgroups, seccomp, masked paths).
  mkdir -p "$work/bundle"
  (cd "$work/bundle" && runc spec)
  python3 - "$work/bundle/config.json" "$rootfs" <<'PY'
import json, sys
path, rootfs = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["root"] = {"path": rootfs, "readonly": False}
json.dump(c, open(path, "w"))
PY
  python3 "$here/run_timer.py" -n "$runs" \
    --label "strata runner" "$bin $rootfs /bin/true" \
    --label "runc run" "runc run --bundle $work/bundle strata-bench-\$\$"
fi
echo "in-process (runner only, no process start-up), $runs runs:"
"$bin" -n "$runs" "$rootfs" /bin/true | sort -n | awk '{a[NR]=$1} END {printf "  median %.1f ms  (min %.1f, max %.1f)\n", 1e3*a[int((NR+1)/2)], 1e3*a[1], 1e3*a[NR]}'

if [ -z "${SKIP_ROOTLESS:-}" ] && id -u strata-subuid >/dev/null 2>&1 && command -v newuidmap >/dev/null; then
  echo
  echo "== rootless: strata run --rm as a user against the floor (unshare -r) as that user, $runs rounds"
  chmod 755 "$work"
  rl=()
  for user in strata-subuid nobody; do
    home=$work/home-$user
    mkdir -p "$home" && chown "$(id -u "$user"):$(id -g "$user")" "$home"
    as="setpriv --reuid=$(id -u "$user") --regid=$(id -g "$user") --clear-groups env -i PATH=/usr/bin:/bin HOME=$home XDG_DATA_HOME=$home/data"
    $as "$strata" bootstrap busybox >/dev/null
    $as "$strata" run --rm busybox true # unpacks the snapshot
    rl+=(--label "strata run --rm as $user" "$as $strata run --rm busybox true"
         --label "unshare -r floor as $user" "$as unshare --user --map-root-user --fork --pid --mount --net --uts --ipc $work/rootfs/bin/true")
  done
  python3 "$here/run_timer.py" -n "$runs" "${rl[@]}"
fi
