#!/usr/bin/env bash
# Debian's docker-compose (1.29, docker-py underneath) against strata
# serve: a web service (busybox httpd) and a client that fetches from it by
# service name through the project's network and exits 0; `up -d`, `ps`,
# `logs`, `exec`, `down` (containers and the network removed). Skips when
# docker-compose is not installed. Runs in a network namespace of its own.
. "$(dirname "$0")/own_netns.sh"
sysctl -qw net.ipv4.ip_forward=1
. "$(dirname "$0")/lib.sh"

command -v docker-compose >/dev/null || skip "needs docker-compose (apt-get install docker-compose)"
. "$(dirname "$0")/../support/docker_client.sh"
need_docker_client

SOCK=$WORK/s.sock
export DOCKER_HOST=unix://$SOCK
# compose's exec runs the docker CLI found in PATH: Debian's 20.10 client
# (/usr/local/bin may hold another).
compose() { PATH=/usr/bin:$PATH timeout 180 docker-compose --ansi never -p demo -f "$WORK/proj/docker-compose.yml" "$@"; }

strata bootstrap busybox >/dev/null || fail "bootstrap"
start_strata_serve "$SOCK"

mkdir -p "$WORK/proj"
cat >"$WORK/proj/docker-compose.yml" <<'EOF'
version: "2.4"
services:
  web:
    image: busybox
    command: sh -c 'mkdir -p /www && echo hello-compose > /www/index.html && exec httpd -f -p 80 -h /www'
  client:
    image: busybox
    depends_on: [web]
    command: sh -c 'for i in $$(seq 50); do wget -qO- http://web/ && exit 0; sleep 0.2; done; exit 1'
EOF

out=$(compose up -d 2>&1) || fail "compose up -d: $out
$(tail -5 "$WORK/serve.log")"
assert_contains "$out" "Creating network \"demo_default\"" "up: the network"
code=$(timeout 60 "$DOCKER" wait demo_client_1) || fail "docker wait demo_client_1"
assert_eq "$code" "0" "the client fetched from web by its service name"
out=$(compose logs --no-color client) || fail "compose logs: $out"
assert_contains "$out" "hello-compose" "compose logs: what the client fetched"
out=$(compose ps) || fail "compose ps: $out"
assert_contains "$out" "demo_web_1" "compose ps: web"
assert_contains "$(echo "$out" | grep demo_web_1)" "Up" "compose ps: web is up"
assert_contains "$(echo "$out" | grep demo_client_1)" "Exit 0" "compose ps: client exited 0"
out=$(compose exec -T web cat /www/index.html) || fail "compose exec: $out"
assert_eq "$out" "hello-compose" "compose exec"
out=$(compose down 2>&1) || fail "compose down: $out"
assert_contains "$out" "Removing network demo_default" "down: the network"
assert_eq "$("$STRATA" ps -aq)" "" "down: no container left"
assert_eq "$("$STRATA" network ls -q --filter name=demo_default)" "" "down: the network is gone"
echo "PASS"
