# Sourced by the e2e tests that drive a server with Debian's docker CLI
# (after lib.sh). need_docker_client skips unless /usr/bin/docker is the
# docker.io 20.10 client (API 1.41; /usr/local/bin may hold another one),
# then sets DOCKER, an empty client config of the test's own (no user
# config, no credential helpers) and `docker`, the client with a timeout.
need_docker_client() {
  DOCKER=/usr/bin/docker
  [ -x "$DOCKER" ] || skip "needs Debian's docker CLI (apt-get install docker.io)"
  "$DOCKER" --version | grep -q 'Docker version 20\.10' || skip "needs docker.io 20.10's client"
  export DOCKER_CONFIG=$WORK/docker-config
  mkdir -p "$DOCKER_CONFIG"
}
docker() { timeout 120 "$DOCKER" "$@"; }

# Starts `strata serve -H unix://SOCK [ARGS...]` in the background
# (SERVE_PID, its log in $WORK/serve.log) and waits for the socket; at exit
# the test's containers and custom networks are removed and the server is
# stopped with SIGTERM.
start_strata_serve() {
  local sock=$1 _
  shift
  "$STRATA" serve -H "unix://$sock" "$@" 2>"$WORK/serve.log" &
  SERVE_PID=$!
  on_exit stop_strata_serve
  on_exit remove_strata_objects
  for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.05; done
  [ -S "$sock" ] || fail "strata serve did not start: $(cat "$WORK/serve.log")"
}
stop_strata_serve() { kill -TERM "$SERVE_PID" 2>/dev/null; wait "$SERVE_PID" 2>/dev/null; }
remove_strata_objects() {
  local c n
  for c in $("$STRATA" ps -aq --no-trunc 2>/dev/null); do "$STRATA" rm -f "$c" >/dev/null 2>&1; done
  for n in $("$STRATA" network ls -q --filter type=custom 2>/dev/null); do "$STRATA" network rm "$n" >/dev/null 2>&1; done
}
