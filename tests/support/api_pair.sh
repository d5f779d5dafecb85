# Sourced by the e2e tests that compare strata serve with a real dockerd
# (after own_netns.sh and lib.sh): api_pair_start starts a dockerd of the
# test's own (data root, socket and network namespace, no bridge, no
# iptables) with the busybox image loaded, and strata serve on a socket of
# its own; both are stopped with the test. Skips when Debian's docker 20.10
# client or dockerd is missing or dockerd cannot run a container here.
#
# After it: $DOCKER, $DD_SOCK (dockerd), $S_SOCK (strata serve), the
# transcript helpers `run` (a docker command's stdout, stderr and exit
# status) and `normalize` (container IDs replaced), and api_pair_compare
# SCRIPT_FUNCTION, which runs the function against both and fails on any
# difference.

api_pair_start() {
  . "$(dirname "${BASH_SOURCE[0]}")/docker_client.sh"
  need_docker_client
  command -v dockerd >/dev/null || skip "needs dockerd (apt-get install docker.io)"

  strata bootstrap busybox >/dev/null || fail "bootstrap"
  strata save busybox -o "$WORK/busybox.tar" --format docker >/dev/null || fail "save"

  DD=$WORK/dockerd
  DD_SOCK=$DD/d.sock
  mkdir -p "$DD"
  dockerd --data-root "$DD/data" --exec-root "$DD/exec" --pidfile "$DD/pid" -H "unix://$DD_SOCK" \
    --iptables=false --ip6tables=false --bridge=none --ip-masq=false "${API_PAIR_DOCKERD_ARGS[@]}" >"$DD/log" 2>&1 &
  DOCKERD_PID=$!
  on_exit api_pair_stop_dockerd
  local _
  for _ in $(seq 1 60); do DOCKER_HOST=unix://$DD_SOCK "$DOCKER" version >/dev/null 2>&1 && break; sleep 0.5; done
  DOCKER_HOST=unix://$DD_SOCK "$DOCKER" version >/dev/null 2>&1 || skip "dockerd did not start: $(tail -3 "$DD/log")"
  DOCKER_HOST=unix://$DD_SOCK "$DOCKER" load -i "$WORK/busybox.tar" >/dev/null || fail "docker load into dockerd"
  DOCKER_HOST=unix://$DD_SOCK timeout 60 "$DOCKER" run --rm --network none busybox true >/dev/null 2>&1 ||
    skip "dockerd cannot run a container here: $(DOCKER_HOST=unix://$DD_SOCK "$DOCKER" run --rm --network none busybox true 2>&1 | tail -1)"

  S_SOCK=$WORK/s.sock
  start_strata_serve "$S_SOCK"
}

api_pair_stop_dockerd() {
  DOCKER_HOST=unix://$DD_SOCK timeout 30 "$DOCKER" rm -f $(DOCKER_HOST=unix://$DD_SOCK "$DOCKER" ps -aq) >/dev/null 2>&1
  kill "$DOCKERD_PID" 2>/dev/null
  local _
  for _ in $(seq 1 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
  umount -R "$DD/exec" "$DD/data" 2>/dev/null
}

# One docker command of a transcript: its stdout, stderr and exit status.
d() { timeout 120 "$DOCKER" "$@"; }
run() {
  local out err rc
  out=$(d "$@" 2>"$WORK/err")
  rc=$?
  err=$(cat "$WORK/err")
  echo "\$ docker $*"
  [ -z "$out" ] || echo "$out"
  [ -z "$err" ] || echo "stderr: $err"
  echo "exit $rc"
}
# Container IDs differ between the two; image IDs are the same on both sides.
normalize() { sed -E 's/[0-9a-f]{64}/<ID>/g; s/\b[0-9a-f]{12}\b/<ID12>/g'; }

# Runs the function $1 against dockerd, then against strata serve; fails
# on any difference, else prints the transcript both gave.
api_pair_compare() {
  DOCKER_HOST=unix://$DD_SOCK "$1" 2>&1 | normalize >"$WORK/dockerd.out"
  DOCKER_HOST=unix://$S_SOCK "$1" 2>&1 | normalize >"$WORK/strata.out"
  diff -u "$WORK/dockerd.out" "$WORK/strata.out" || fail "strata serve answers the docker CLI differently from dockerd (see above)"
  cat "$WORK/strata.out"
}
