#!/usr/bin/env bash
# The Docker Engine API (issue #17): how long Debian's docker CLI takes for
# everyday commands when the server is `strata serve`, dockerd, or
# `podman system service`, all on one machine, in the same run.
#
#   bench/api.sh [BUILD_DIR] [RUNS]      (root; RUNS defaults to 10)
#
# Commands, each through DOCKER_HOST=unix://<that server's socket>:
#   docker ps -a              (10 created containers in each server's store)
#   docker images
#   docker run -d --rm --network none busybox true (create + start)
#   docker run --rm --network none busybox true (in the foreground: create,
#   attach, start, wait for the exit and the removal)
# The same busybox image (made by `strata bootstrap`) is loaded into every
# server. Interleaved A B C A B C ... after a warm-up round
# (bench/run_timer.py: medians and pairwise ratios). The client is Debian's
# docker CLI (/usr/bin/docker, the 20.10 client: API 1.41), whatever other
# docker is first on PATH. dockerd is one of the test suite's own
# (scripts/dockerd.sh: no bridge, no iptables); podman's service runs on a
# store of its own. SKIP_PODMAN=1 / SKIP_DOCKER=1 leave one out.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
runs=${2:-10}
strata=$build/cli/strata
client=/usr/bin/docker
[ -x "$strata" ] || { echo "build first: $strata missing" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 2; }
[ -x "$client" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null

work=$(mktemp -d /tmp/strata-bench-api.XXXXXX)
pids=()
cleanup() {
  set +e
  for sock in "$work"/*.sock "$work"/docker/docker.sock; do
    [ -S "$sock" ] || continue
    ids=$(DOCKER_HOST=unix://$sock $client ps -aq 2>/dev/null)
    [ -z "$ids" ] || DOCKER_HOST=unix://$sock $client rm -f $ids >/dev/null 2>&1
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  umount -R "$work/docker/exec" "$work/docker/data" 2>/dev/null
  for id in $(STRATA_ROOT=$work/store "$strata" ps -aq --no-trunc 2>/dev/null); do
    STRATA_ROOT=$work/store "$strata" rm -f "$id" >/dev/null 2>&1
  done
  if [ -n "${podman:-}" ]; then $podman rm -af >/dev/null 2>&1; $podman system reset --force >/dev/null 2>&1; fi
  rm -rf "$work"
}
trap cleanup EXIT

wait_for() { # SOCKET
  for _ in $(seq 1 100); do
    DOCKER_HOST=unix://$1 $client version >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "no server answered on $1" >&2
  return 1
}

export STRATA_ROOT=$work/store
"$strata" bootstrap busybox >/dev/null
"$strata" save busybox -o "$work/busybox.tar" --format docker
"$strata" serve -H "unix://$work/strata.sock" >"$work/serve.log" 2>&1 &
pids+=($!)
wait_for "$work/strata.sock"

servers=(strata "$work/strata.sock")
if [ -z "${SKIP_DOCKER:-}" ] && command -v dockerd >/dev/null; then
  mkdir -p "$work/docker"
  # A dockerd of the benchmark's own, on its own socket.
  dir=$work/docker
  setsid nohup dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
    -H "unix://$dir/docker.sock" --iptables=false --ip6tables=false --bridge=none --ip-masq=false \
    >"$dir/dockerd.log" 2>&1 </dev/null &
  pids+=($!)
  wait_for "$dir/docker.sock" && servers+=(dockerd "$dir/docker.sock")
fi
if [ -z "${SKIP_PODMAN:-}" ]; then
  command -v podman >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman >/dev/null
  podman="podman --root $work/podman --runroot $work/podman-run --storage-driver overlay --events-backend file --cgroup-manager cgroupfs"
  # What the CLI would pass as flags (containers.sh): this machine's hard
  # NOFILE limit is below podman's default, and runc is Debian's runtime.
  cat >"$work/containers.conf" <<'EOC'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
events_logger = "file"
cgroup_manager = "cgroupfs"
EOC
  export CONTAINERS_CONF=$work/containers.conf
  $podman system service -t 0 "unix://$work/podman.sock" >"$work/podman.log" 2>&1 &
  pids+=($!)
  wait_for "$work/podman.sock" && servers+=(podman "$work/podman.sock")
fi

ps_t=() images_t=() run_t=() fg_t=()
for ((i = 0; i < ${#servers[@]}; i += 2)); do
  name=${servers[i]} sock=${servers[i + 1]}
  d="env DOCKER_HOST=unix://$sock $client"
  bash -c "$d load -q -i $work/busybox.tar" >/dev/null
  for _ in $(seq 10); do bash -c "$d create --network none busybox true" >/dev/null; done
  ps_t+=(--label "docker ps -a via $name" "$d ps -a")
  images_t+=(--label "docker images via $name" "$d images")
  run_t+=(--label "docker run -d --rm via $name" "$d run -d --rm --network none busybox true")
  fg_t+=(--label "docker run --rm via $name" "$d run --rm --network none busybox true")
done

echo "== docker ps -a (10 containers), $runs rounds"
python3 "$here/run_timer.py" -n "$runs" "${ps_t[@]}"
echo
echo "== docker images, $runs rounds"
python3 "$here/run_timer.py" -n "$runs" "${images_t[@]}"
echo
echo "== docker run -d --rm --network none busybox true, $runs rounds"
python3 "$here/run_timer.py" -n "$runs" "${run_t[@]}"
echo
echo "== docker run --rm --network none busybox true (foreground), $runs rounds"
python3 "$here/run_timer.py" -n "$runs" "${fg_t[@]}"
