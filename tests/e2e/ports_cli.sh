#!/usr/bin/env bash
# -p/--publish, -P/--publish-all and `strata port` at the CLI: Docker's
# grammar errors, the record's HostConfig.PortBindings/PublishAllPorts and
# Config.ExposedPorts, `port` of a container that does not run. (Traffic
# through published ports: e2e.ports, in network namespaces of its own.)
. "$(dirname "$0")/lib.sh"
strata bootstrap busybox >/dev/null || fail "bootstrap"

expect_fail "invalid containerPort: abc" strata create -p abc busybox true
expect_fail "invalid hostPort: x" strata create -p x:80 busybox true
expect_fail "invalid ranges specified for container and host Ports: 80-81 and 8000-8002" \
  strata create -p 8000-8002:80-81 busybox true
expect_fail "invalid proto: icmp" strata create -p 80/icmp busybox true
expect_fail "IPv4 addresses only" strata create -p '[::1]:80:80' busybox true
strata create -p 80/icmp busybox true >/dev/null 2>&1
assert_eq "$?" 2 "a bad -p is a usage error (exit 2)"
assert_eq "$(strata ps -aq | wc -l)" 0 "a refused -p leaves no container"

strata create --name web -p 127.0.0.1:18080:80 -p 8000-8001:90-91 -p 5353:53/udp -P busybox true >/dev/null ||
  fail "create with -p"
assert_eq "$(strata inspect --format '{{json .HostConfig.PortBindings}}' web)" \
  '{"53/udp":[{"HostIp":"","HostPort":"5353"}],"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"18080"}],"90/tcp":[{"HostIp":"","HostPort":"8000"}],"91/tcp":[{"HostIp":"","HostPort":"8001"}]}' \
  "HostConfig.PortBindings"
assert_eq "$(strata inspect --format '{{.HostConfig.PublishAllPorts}}' web)" "true" "PublishAllPorts"
assert_eq "$(strata inspect --format '{{json .Config.ExposedPorts}}' web)" \
  '{"53/udp":{},"80/tcp":{},"90/tcp":{},"91/tcp":{}}' "ExposedPorts gets the published ports"
# A container that does not run publishes nothing: no lines, and Docker's error for one port.
assert_eq "$(strata port web)" "" "port of a created container"
expect_fail "Error: No public port '80/tcp' published for web" strata port web 80/tcp
expect_fail "Error: No public port '80' published for web" strata port web 80
expect_fail "invalid port (x)" strata port web x
# While it runs, `port` reads the NetworkSettings its sandbox writes
# (<store>/containers/<id>/network.json); written here as the sandbox does.
id=$(strata inspect --format '{{.Id}}' web)
cat >"$STRATA_ROOT/containers/$id/network.json" <<'JSON'
{"Networks":{},"Ports":{"443/tcp":null,"53/udp":[{"HostIp":"0.0.0.0","HostPort":"5353"}],
 "80/tcp":[{"HostIp":"127.0.0.1","HostPort":"18080"}],"9/tcp":[{"HostIp":"0.0.0.0","HostPort":"32768"}]}}
JSON
assert_eq "$(strata port web)" "$(printf '9/tcp -> 0.0.0.0:32768\n53/udp -> 0.0.0.0:5353\n80/tcp -> 127.0.0.1:18080')" \
  "port: Docker's lines, in natural order"
assert_eq "$(strata port web 80)" "127.0.0.1:18080" "port CONTAINER 80"
assert_eq "$(strata port "${id:0:12}" 53/udp)" "0.0.0.0:5353" "port by short id, udp"
assert_eq "$(strata container port web 80/tcp)" "127.0.0.1:18080" "container port"
expect_fail "Error: No public port '443/tcp' published for web" strata port web 443/tcp
rm "$STRATA_ROOT/containers/$id/network.json"
strata create --name plain busybox true >/dev/null
assert_eq "$(strata inspect --format '{{json .HostConfig.PortBindings}} {{.HostConfig.PublishAllPorts}}' plain)" \
  "{} false" "no -p"
echo ok
