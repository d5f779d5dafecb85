#!/usr/bin/env bash
# The same script of docker CLI commands against strata serve and against a
# real dockerd started here (its own data root, socket and network
# namespace, no bridge, no iptables); the outputs must be the same, IDs
# aside. Skips when dockerd is not installed or cannot start (or run a
# container) on this machine.
. "$(dirname "$0")/own_netns.sh"
. "$(dirname "$0")/lib.sh"

DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || skip "needs Debian's docker CLI (apt-get install docker.io)"
"$DOCKER" --version | grep -q 'Docker version 20\.10' || skip "needs docker.io 20.10's client"
command -v dockerd >/dev/null || skip "needs dockerd (apt-get install docker.io)"
export DOCKER_CONFIG=$WORK/docker-config
mkdir -p "$DOCKER_CONFIG"

strata bootstrap busybox >/dev/null || fail "bootstrap"
strata save busybox -o "$WORK/busybox.tar" --format docker >/dev/null || fail "save"

# dockerd, in this namespace, gone with the test.
DD=$WORK/dockerd
mkdir -p "$DD"
dockerd --data-root "$DD/data" --exec-root "$DD/exec" --pidfile "$DD/pid" -H "unix://$DD/d.sock" \
  --iptables=false --ip6tables=false --bridge=none --ip-masq=false >"$DD/log" 2>&1 &
DOCKERD_PID=$!
stop_dockerd() {
  DOCKER_HOST=unix://$DD/d.sock timeout 30 "$DOCKER" rm -f $(DOCKER_HOST=unix://$DD/d.sock "$DOCKER" ps -aq) >/dev/null 2>&1
  kill "$DOCKERD_PID" 2>/dev/null
  for _ in $(seq 1 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
  umount -R "$DD/exec" "$DD/data" 2>/dev/null
}
on_exit stop_dockerd
for _ in $(seq 1 60); do DOCKER_HOST=unix://$DD/d.sock "$DOCKER" version >/dev/null 2>&1 && break; sleep 0.5; done
DOCKER_HOST=unix://$DD/d.sock "$DOCKER" version >/dev/null 2>&1 || skip "dockerd did not start: $(tail -3 "$DD/log")"
DOCKER_HOST=unix://$DD/d.sock "$DOCKER" load -i "$WORK/busybox.tar" >/dev/null || fail "docker load into dockerd"
DOCKER_HOST=unix://$DD/d.sock timeout 60 "$DOCKER" run --rm --network none busybox true >/dev/null 2>&1 ||
  skip "dockerd cannot run a container here: $(DOCKER_HOST=unix://$DD/d.sock "$DOCKER" run --rm --network none busybox true 2>&1 | tail -1)"

"$STRATA" serve -H "unix://$WORK/s.sock" 2>"$WORK/serve.log" &
SERVE_PID=$!
stop_server() { kill -TERM "$SERVE_PID" 2>/dev/null; wait "$SERVE_PID" 2>/dev/null; }
on_exit stop_server
cleanup_containers() {
  for c in $("$STRATA" ps -aq --no-trunc 2>/dev/null); do "$STRATA" rm -f "$c" >/dev/null 2>&1; done
}
on_exit cleanup_containers
for _ in $(seq 1 100); do [ -S "$WORK/s.sock" ] && break; sleep 0.05; done

# The script: each command's stdout, stderr and exit status, with 64- and
# 12-hex IDs of containers replaced (image IDs are the same on both sides).
script() {
  d() { timeout 120 "$DOCKER" "$@"; }
  run() {
    local out err rc
    out=$(d "$@" 2>"$WORK/err"); rc=$?
    err=$(cat "$WORK/err")
    echo "\$ docker $*"
    [ -z "$out" ] || echo "$out"
    [ -z "$err" ] || echo "stderr: $err"
    echo "exit $rc"
  }
  run images --format '{{.Repository}} {{.Tag}} {{.ID}}'
  run image inspect -f '{{.Id}} {{.RepoTags}} {{.Os}} {{.Architecture}} {{json .Config.Cmd}}' busybox
  run history --format '{{.CreatedBy}}' busybox
  run tag busybox example.com/team/box:v1
  run images --format '{{.Repository}}:{{.Tag}}' --filter reference='example.com/*/*'
  run rmi example.com/team/box:v1
  run rmi nosuch
  run image inspect nosuch
  run tag nosuch other
  run history nosuch
  run create --name c1 --network none busybox sh -c 'echo out; echo err >&2; exit 3'
  run ps -a --format '{{.Names}} {{.Image}} {{.Command}} {{.State}} {{.Status}}'
  run start c1
  run wait c1
  run logs c1
  run ps -a --format '{{.Names}} {{.State}}'
  run inspect -f '{{.State.Status}} {{.State.ExitCode}} {{.Name}} {{.Config.Image}} {{json .Config.Cmd}} {{.HostConfig.NetworkMode}} {{.State.Running}}' c1
  run kill c1
  run stop c1
  run rm c1
  run run -d --name c2 --network none busybox sleep 1000
  run ps --format '{{.Names}} {{.State}}'
  run exec c2 sh -c 'echo out; echo err >&2; exit 6'
  echo piped | run exec -i c2 cat
  run exec -u 1000 -w /tmp -e FOO=bar c2 sh -c 'echo $(id -u) $(pwd) $FOO'
  run rm c2
  run rmi busybox
  run stop -t 1 c2
  run wait c2
  run rm c2
  run run --rm --network none busybox echo hi
  run run --name c3 --network none busybox sh -c 'echo out; exit 5'
  run start -a c3
  run rm c3
  echo piped | run run -i --rm --network none busybox cat
  run run -d --name c4 --network none busybox sh -c 'sleep 2; echo late; exit 4'
  run attach c4
  run attach c4
  run rm c4
  run create -m 1m busybox true
  run create --cpus 1000 busybox true
  run start nosuch
  run stop nosuch
  run rm nosuch
  run logs nosuch
  run wait nosuch
  run inspect nosuch
}
normalize() { sed -E 's/[0-9a-f]{64}/<ID>/g; s/\b[0-9a-f]{12}\b/<ID12>/g'; }

DOCKER_HOST=unix://$DD/d.sock script 2>&1 | normalize >"$WORK/dockerd.out"
DOCKER_HOST=unix://$WORK/s.sock script 2>&1 | normalize >"$WORK/strata.out"
diff -u "$WORK/dockerd.out" "$WORK/strata.out" || fail "strata serve answers the docker CLI differently from dockerd (see above)"
cat "$WORK/strata.out" # the transcript both sides gave
echo "PASS"
