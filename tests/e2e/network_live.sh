#!/usr/bin/env bash
# `network connect` / `disconnect` on a RUNNING container (Docker's: live),
# Docker's errors for them, the endpoint a live connect adds owned by the
# monitor (swept after a crash as the others), NetworkSettings.SandboxKey,
# and `-p` with --network host (Docker's warning) / none / container:.
# Everything happens in a network namespace of the test's own.
. "$(dirname "$0")/own_netns.sh"
sysctl -qw net.ipv4.ip_forward=1
. "$(dirname "$0")/lib.sh"
need nsenter util-linux

cleanup() {
  for id in $("$STRATA" ps -aq --no-trunc 2>/dev/null); do "$STRATA" rm -f "$id" >/dev/null 2>&1; done
}
on_exit cleanup

strata bootstrap busybox >/dev/null || fail "bootstrap"
strata network create net1 >/dev/null || fail "create net1"
strata network create --subnet 10.77.0.0/24 net2 >/dev/null || fail "create net2"
net2=$(strata network inspect -f '{{.Id}}' net2)

# A serves on net1; B waits on net2.
a=$(strata run -d --name sa --network net1 busybox \
  sh -c 'mkdir -p /www && echo hello-from-a > /www/index.html && exec httpd -f -p 80 -h /www') || fail "run a"
b=$(strata run -d --name sb --network net2 busybox sleep 300) || fail "run b"
from_b() { strata exec sb "$@"; }
# B's DNS server does not know A (nslookup prints its error on stdout).
b_cannot_resolve_a() {
  local out
  out=$(from_b nslookup sa 2>&1) && fail "B resolves sa: $out"
  assert_contains "$out" "can't find sa" "${1}"
}
# (busybox's wget crashes on a failed lookup and with -T: names are checked with
# nslookup, timeouts are timeout's)
b_cannot_resolve_a "sa unknown on net2 before the connect"

# --- connect while it runs: a new link and address in A's namespace, now
strata network connect --ip 10.77.0.50 --alias alpha net2 sa || fail "network connect (running)"
out=$(strata exec sa ip -4 -o addr)
echo "$out" | grep -qE 'eth1 +inet 10\.77\.0\.50/24' || fail "eth1 with --ip in A's namespace: $out"
assert_eq "$(strata inspect -f '{{.NetworkSettings.Networks.net2.IPAddress}}' sa)" "10.77.0.50" "inspect after live connect"
assert_eq "$(strata network inspect -f '{{range $k, $v := .Containers}}{{$v.Name}} {{end}}' net2 | tr ' ' '\n' | sort | tr '\n' ' ')" \
  " sa sb " "network inspect lists sa on net2"
ep="$STRATA_ROOT/networks/$net2/endpoints/$a.json"
[ -f "$ep" ] || fail "the endpoint file of the live connect"
grep -q "\"Owner\":$(cat "$STRATA_ROOT/containers/$a/monitor.pid")" "$ep" || fail "the monitor owns it: $(cat "$ep")"
for i in $(seq 30); do out=$(from_b timeout 5 wget -qO- http://sa/ 2>&1) && break; sleep 0.1; done
assert_eq "$out" "hello-from-a" "B reaches A by name"
assert_eq "$(from_b timeout 5 wget -qO- http://alpha/)" "hello-from-a" "B reaches A by --alias"
assert_eq "$(from_b timeout 5 wget -qO- http://10.77.0.50/)" "hello-from-a" "B reaches A by its new address"
assert_contains "$(strata exec sa nslookup sb 2>&1)" "10.77.0." "A resolves B through its own DNS server"
assert_eq "$(strata exec sa timeout 5 wget -qO- http://sa.net1/)" "hello-from-a" "A still on net1"

# --- Docker's errors
expect_fail "endpoint with name sa already exists in network net2" strata network connect net2 sa
expect_fail "container cannot be disconnected from host network or connected to host network" \
  strata network connect host sa
strata run -d --name sn --network none busybox sleep 300 >/dev/null || fail "run n"
expect_fail "container cannot be connected to multiple networks with one of the networks in private (none) mode" \
  strata network connect net1 sn
strata run -d --name sh1 --network host busybox sleep 300 >/dev/null || fail "run h"
expect_fail "container sharing network namespace with another container or host cannot be connected to any other network" \
  strata network connect net1 sh1
expect_fail "container cannot be disconnected from host network or connected to host network" \
  strata network disconnect host sh1

# --- NetworkSettings.SandboxKey: the running container's namespace
for c in sa sh1; do
  key=$(strata inspect -f '{{.NetworkSettings.SandboxKey}}' $c)
  assert_eq "$key" "/proc/$(strata inspect -f '{{.State.Pid}}' $c)/ns/net" "SandboxKey of $c"
done
key=$(strata inspect -f '{{.NetworkSettings.SandboxKey}}' sa)
out=$(nsenter --net="$key" ip -4 -o addr)
assert_contains "$out" "10.77.0.50/24" "SandboxKey enters A's namespace"
strata rm -f sn sh1 >/dev/null

# --- disconnect while it runs: link, address, endpoint, DNS record gone
strata network disconnect net2 sa || fail "network disconnect (running)"
out=$(strata exec sa ip -o addr)
[[ "$out" == *10.77.0.* ]] && fail "an address of net2 left in A: $out"
[[ "$out" == *eth1* ]] && fail "A's eth1 left: $out"
[ -e "$ep" ] && fail "the endpoint file is left"
b_cannot_resolve_a "sa's record on net2 gone with the disconnect"
expect_fail "" from_b timeout 5 wget -qO- http://10.77.0.50/
assert_eq "$(strata inspect -f '{{with .NetworkSettings.Networks.net2}}x{{end}}' sa)" "" "net2 gone from inspect"
assert_eq "$(strata exec sa timeout 5 wget -qO- http://sa.net1/)" "hello-from-a" "A still serves on net1"
expect_fail "container $a is not connected to network net2" strata network disconnect net2 sa

# --- the configuration follows: a live connect is joined by the next start
strata network connect net2 sa || fail "connect again"
strata stop -t 1 sa >/dev/null || fail "stop a"
assert_eq "$(strata inspect -f '{{.NetworkSettings.SandboxKey}}' sa)" "" "no SandboxKey while stopped"
strata start sa >/dev/null || fail "start a"
assert_contains "$(strata exec sa ip -4 -o addr)" "10.77.0." "net2 joined again at start"
for i in $(seq 30); do out=$(from_b timeout 5 wget -qO- http://sa/ 2>&1) && break; sleep 0.1; done
assert_eq "$out" "hello-from-a" "B reaches A after a restart"
# Disconnected while stopped: not joined at the next start.
strata stop -t 1 sa >/dev/null
strata network disconnect net2 sa || fail "disconnect (stopped)"
expect_fail "is not connected to the network net2" strata network disconnect net2 sa
strata start sa >/dev/null || fail "start sa (net1 only)"
out=$(strata exec sa ip -4 -o addr)
[[ "$out" == *10.77.0.* ]] && fail "net2 joined after a disconnect: $out"

# --- every network disconnected, then connected again while it runs
strata network disconnect net1 sa || fail "disconnect the last network"
strata restart -t 1 sa >/dev/null || fail "restart sa without networks"
assert_eq "$(strata exec sa sh -c 'ls /sys/class/net | tr "\n" " "')" "lo " "no network left"
strata network connect net2 sa || fail "connect a container without networks"
for i in $(seq 30); do out=$(from_b timeout 5 wget -qO- http://sa/ 2>&1) && break; sleep 0.1; done
assert_eq "$out" "hello-from-a" "B reaches A connected to its only network live"

# --- a live-added endpoint after its monitor is killed: stale, swept
ep="$STRATA_ROOT/networks/$net2/endpoints/$a.json"
[ -f "$ep" ] || fail "endpoint of the live connect"
kill -9 "$(cat "$STRATA_ROOT/containers/$a/monitor.pid")"
sleep 0.5
strata network ls >/dev/null
[ -e "$ep" ] && fail "the crashed monitor's live endpoint is not swept"
strata rm -f sa >/dev/null

# --- published ports go with the endpoint they lead to
sp=$(strata run -d --name sp --network net1 -p 18090:80 busybox \
  sh -c 'mkdir -p /www && echo hello-published > /www/index.html && exec httpd -f -p 80 -h /www') || fail "run sp"
for i in $(seq 50); do
  out=$(bash -c "exec 3<>/dev/tcp/127.0.0.1/18090 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3" 2>/dev/null) && break
  sleep 0.1
done
assert_contains "$out" "hello-published" "published port before the disconnect"
strata network disconnect net1 sp || fail "disconnect sp"
assert_eq "$(strata port sp)" "" "no published port left after the disconnect"
bash -c "exec 3<>/dev/tcp/127.0.0.1/18090" 2>/dev/null && fail "the published port still answers after the disconnect"
if command -v nft >/dev/null && nft list ruleset >/dev/null 2>&1; then
  nft list ruleset | grep -q "strata:$sp" && fail "the DNAT rules of sp are left: $(nft list ruleset)"
fi
strata rm -f sp >/dev/null

# --- UDP published ports: the conntrack entries of their flows go with the
# container (a client that keeps sending would stay NATed to a released address)
if [ -r /proc/net/nf_conntrack ]; then
  strata run -d --name su --network net1 -p 18095:5353/udp busybox sleep 300 >/dev/null || fail "run su"
  uip=$(strata inspect -f '{{.NetworkSettings.Networks.net1.IPAddress}}' su)
  gw=$(strata network inspect -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' net1)
  for _ in 1 2 3; do echo hi >"/dev/udp/$gw/18095"; done
  grep -q "udp .* src=$uip " /proc/net/nf_conntrack ||
    fail "no conntrack entry of the UDP flow to $uip: $(cat /proc/net/nf_conntrack)"
  strata stop -t 1 su >/dev/null || fail "stop su"
  grep "udp .* src=$uip " /proc/net/nf_conntrack && fail "conntrack entries of su's UDP flows are left"
  strata rm -f su >/dev/null
else
  echo "note: no /proc/net/nf_conntrack, the conntrack flush is not checked"
fi

# --- disconnect -f: the endpoints of a container that no longer exists
expect_fail "No such container" strata network disconnect -f net2 ghost

# --- -p with the host's namespace: Docker's warning, and it runs; none and -P: silent
out=$(strata run --rm --network host -p 18080:80 busybox true 2>&1) || fail "run --network host -p: $out"
assert_eq "$out" "WARNING: Published ports are discarded when using host network mode" "host -p warning"
out=$(strata run --rm --network none -p 18080:80 busybox true 2>&1) || fail "run --network none -p: $out"
assert_eq "$out" "" "none -p: no warning"
out=$(strata create --network host -p 18081:80 busybox true 2>&1 >/dev/null) || fail "create --network host -p"
assert_eq "$out" "WARNING: Published ports are discarded when using host network mode" "create host -p warning"
expect_fail "conflicting options: port publishing and the container type network mode" \
  strata run --rm --network container:sb -p 18080:80 busybox true

strata rm -f sb >/dev/null
for _ in $(seq 100); do ip -o link | grep -q ' veth' || break; sleep 0.05; done
ip -o link | grep -q ' veth' && fail "veths left: $(ip -o link)"
echo "PASS"
