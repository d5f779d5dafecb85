# Debian's docker-registry on a free port of 127.0.0.1, for the e2e tests and
# the benchmarks (sourced: tests/e2e/build_registry.sh, bench/registry.sh,
# bench/build-cache.sh). Loopback only: nothing leaves the machine.
#
#   registry_start DIR   writes DIR/config.yml (storage in DIR/storage), starts
#                        the registry and waits until it accepts connections.
#                        The free port is found by binding port 0, which
#                        races with other processes: on failure it retries
#                        with a new port (5 tries). Sets REG (127.0.0.1:PORT),
#                        REG_PORT, REG_PID, REG_DIR; returns 1, with the log
#                        on stderr, when it does not start.
#   registry_spawn DIR   starts it again on DIR's config (same port), e.g.
#                        after registry_stop and emptying DIR/storage.
#   registry_stop DIR    stops the registry of DIR (its pid is in DIR/pid)
#                        and waits for it to exit (5 s at most).
#
# Safe under `set -euo pipefail` (the benchmarks use it).
# The functions keep their state in DIR (config.yml, pid, log), so they also
# work from subshells (`export -f registry_spawn registry_stop`, as
# abtime.py's --prepare runs its commands with bash -c).

registry_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# registry_answers PORT: a registry (not whatever else took the port) answers
# GET /v2/ there.
registry_answers() {
  python3 - "$1" 2>/dev/null <<'PY'
import sys, urllib.request, urllib.error
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    r = opener.open("http://127.0.0.1:%s/v2/" % sys.argv[1], timeout=1)
    headers = r.headers
except urllib.error.HTTPError as e:
    headers = e.headers
sys.exit(0 if headers.get("Docker-Distribution-Api-Version", "").startswith("registry/2") else 1)
PY
}

# registry_spawn DIR: start on DIR/config.yml; 0 once the port accepts.
registry_spawn() {
  local dir=$1 port pid
  port=$(sed -n 's/^  addr: 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$dir/config.yml")
  [ -n "$port" ] || { echo "registry_spawn: no port in $dir/config.yml" >&2; return 1; }
  mkdir -p "$dir/storage"
  setsid docker-registry serve "$dir/config.yml" >>"$dir/log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$dir/pid"
  for _ in $(seq 100); do
    registry_answers "$port" && kill -0 "$pid" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  registry_stop "$dir"
  return 1
}

registry_stop() {
  local dir=$1 pid
  [ -f "$dir/pid" ] || return 0
  pid=$(cat "$dir/pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/pid"
  return 0
}

registry_start() {
  local dir=$1 port
  mkdir -p "$dir/storage"
  for _ in 1 2 3 4 5; do
    port=$(registry_free_port) || return 1
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
    if registry_spawn "$dir"; then
      REG=127.0.0.1:$port REG_PORT=$port REG_PID=$(cat "$dir/pid") REG_DIR=$dir
      return 0
    fi
  done
  echo "docker-registry did not start; log ($dir/log):" >&2
  cat "$dir/log" >&2
  return 1
}
