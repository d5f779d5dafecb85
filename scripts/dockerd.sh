#!/usr/bin/env bash
# Starts (up) or stops (down) a Docker engine of the test suite's own, so the
# interoperability tests can check that `docker load` takes strata's
# archives. Its data lives under $STRATA_DOCKER_DIR (default
# /tmp/strata-dockerd); no bridge and no iptables rules, loopback only.
set -u
dir=${STRATA_DOCKER_DIR:-/tmp/strata-dockerd}
case "${1:-}" in
  up)
    command -v dockerd >/dev/null || { echo "dockerd not installed; docker tests will be skipped"; exit 0; }
    [ "$(id -u)" -eq 0 ] || { echo "not root; docker tests will be skipped"; exit 0; }
    docker info >/dev/null 2>&1 && exit 0
    mkdir -p "$dir/data" "$dir/exec"
    setsid nohup dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
      --iptables=false --ip6tables=false --bridge=none --ip-masq=false \
      >"$dir/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && exit 0; sleep 0.5; done
    echo "dockerd did not come up (see $dir/dockerd.log); docker tests will be skipped"
    ;;
  down)
    [ -f "$dir/dockerd.pid" ] || exit 0
    p=$(cat "$dir/dockerd.pid")
    kill "$p" 2>/dev/null
    for _ in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
exit 0
