#!/usr/bin/env bash
# Published ports through network/nat (nftables DNAT, masquerade, hairpin,
# isolation, internal) and network/proxy (the userland proxy), driven by
# strata-netdriver. Everything happens in network namespaces of the test's
# own: this script re-executes itself under `unshare -n` (namespace A, "the
# host"), and makes three more with veth pairs to A:
#   B "container"  10.99.0.2/24 (A: vc0 10.99.0.1), network net1, httpd :80, UDP echo :53
#   C "outside"    10.98.0.2/24 (A: vo0 10.98.0.1), no route beyond its link
#   D "container"  10.97.0.2/24 (A: vd0 10.97.0.1), network net2 (internal), httpd :80
set -u
. "$(dirname "$0")/own_netns.sh"
. "$(dirname "$0")/lib.sh"
ND=${NETDRIVER:?NETDRIVER must point at strata-netdriver}
BB=/bin/busybox
[ -x "$BB" ] || skip "needs /bin/busybox (apt-get install busybox-static)"
need nft nftables
need nsenter util-linux
need ip iproute2
"$ND" available >/dev/null || skip "nftables unavailable: $("$ND" available)"

sysctl -qw net.ipv4.ip_forward=1 || fail "cannot enable forwarding in the test's namespace"

pids=()
on_exit 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null'
# peer NAME HOSTDEV HOSTADDR PEERADDR [route]: a namespace (a sleeping process) with eth0.
declare -A NS
peer() {
  local name=$1 dev=$2 haddr=$3 paddr=$4 route=${5:-}
  unshare -n sleep 100000 &
  local pid=$!
  pids+=("$pid")
  NS[$name]=$pid
  # wait until the sleeper is in its own namespace
  for _ in $(seq 100); do
    [ "$(readlink /proc/$pid/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break
    sleep 0.02
  done
  ip link add "$dev" type veth peer name eth0 netns "$pid" || fail "veth $dev"
  ip addr add "$haddr/24" dev "$dev"
  ip link set "$dev" up
  ns "$name" ip link set lo up
  ns "$name" ip addr add "$paddr/24" dev eth0
  ns "$name" ip link set eth0 up
  if [ -n "$route" ]; then
    ns "$name" ip route add default via "$haddr"
  fi
}
ns() { local n=$1; shift; nsenter -t "${NS[$n]}" -n "$@"; }
# bg NAME CMD...: a server in NAME's namespace, killed at the end.
bg() { local n=$1; shift; nsenter -t "${NS[$n]}" -n "$@" & pids+=("$!"); }
get() { local n=$1 url=$2; ns "$n" timeout 3 "$BB" wget -q -O - "$url" 2>&1; }
get_here() { timeout 3 "$BB" wget -q -O - "$1" 2>&1; }
wait_ready() { # FILE: the publisher's output has "ready" (or it died)
  for _ in $(seq 200); do
    grep -q '^ready' "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "publisher did not start: $(cat "$1")"
}
strata_rules() { nft list ruleset | grep -c 'strata' || true; }

peer B vc0 10.99.0.1 10.99.0.2 route
peer C vo0 10.98.0.1 10.98.0.2
peer D vd0 10.97.0.1 10.97.0.2 route
mkdir -p "$WORK/www-b" "$WORK/www-c" "$WORK/www-d"
echo "hello from B" >"$WORK/www-b/index.html"
echo "hello from C" >"$WORK/www-c/index.html"
echo "hello from D" >"$WORK/www-d/index.html"
bg B "$BB" httpd -f -p 80 -h "$WORK/www-b"
bg C "$BB" httpd -f -p 80 -h "$WORK/www-c"
bg D "$BB" httpd -f -p 80 -h "$WORK/www-d"
bg B "$ND" udp-echo 53
sleep 0.3
assert_eq "$(get B http://10.99.0.2/)" "hello from B" "httpd in B"

# Before any rule: C has no route to 10.99/10.97, so B -> C fails (no masquerade)
# and B -> D works (plain forwarding).
get B http://10.98.0.2/ >/dev/null && fail "B reached C without masquerade: the test cannot tell"
assert_eq "$(get B http://10.97.0.2/)" "hello from D" "B -> D before isolation"

echo "== networks: masquerade, isolation, internal"
"$ND" network net1 vc0 10.99.0.0/24 || fail "add_network net1"
"$ND" network net2 vd0 10.97.0.0/24 internal || fail "add_network net2"
"$ND" network net1 vc0 10.99.0.0/24 || fail "add_network net1 again"
assert_eq "$(nft list chain ip strata postrouting | grep -c 'strata:net1')" 2 "add_network is idempotent"
assert_eq "$(get B http://10.98.0.2/)" "hello from C" "B -> C through masquerade"
get B http://10.97.0.2/ >/dev/null && fail "B reached D on another strata network (isolation)"
get D http://10.98.0.2/ >/dev/null && fail "D on an internal network reached C"
get D http://10.99.0.2/ >/dev/null && fail "D on an internal network reached B"

echo "== published ports: DNAT from outside, from the host, hairpin, proxy on 127.0.0.1, UDP"
"$ND" publish ctr1 10.99.0.2 8080:80 127.0.0.1:18080:80 5353:53/udp 80 >"$WORK/pub1" 2>&1 &
pub1=$!
pids+=("$pub1")
wait_ready "$WORK/pub1"
grep -q '^kernel yes' "$WORK/pub1" || fail "DNAT not installed: $(cat "$WORK/pub1")"
grep -q '^bound 80/tcp 0.0.0.0:8080$' "$WORK/pub1" || fail "8080 not bound: $(cat "$WORK/pub1")"
grep -q '^bound 80/tcp 127.0.0.1:18080$' "$WORK/pub1" || fail "18080 not bound"
free=$(sed -n 's|^bound 80/tcp 0.0.0.0:\([0-9]*\)$|\1|p' "$WORK/pub1" | grep -v '^8080$')
[ -n "$free" ] && [ "$free" != 0 ] || fail "no free port chosen for -p 80: $(cat "$WORK/pub1")"
assert_eq "$(get C http://10.98.0.1:8080/)" "hello from B" "C -> published 8080 (prerouting DNAT)"
assert_eq "$(get C http://10.98.0.1:$free/)" "hello from B" "C -> the port chosen for -p 80"
assert_eq "$(get_here http://10.98.0.1:8080/)" "hello from B" "host -> its own address (output DNAT)"
assert_eq "$(get_here http://127.0.0.1:8080/)" "hello from B" "host -> 127.0.0.1:8080 (proxy)"
assert_eq "$(get_here http://127.0.0.1:18080/)" "hello from B" "host -> 127.0.0.1:18080 (proxy)"
get C http://10.98.0.1:18080/ >/dev/null && fail "a 127.0.0.1 binding was reachable from outside"
assert_eq "$(get B http://10.98.0.1:8080/)" "hello from B" "hairpin: B -> its own published port"
assert_eq "$(ns C "$ND" udp-ask 10.98.0.1 5353 ping)" "echo:ping" "UDP from C (DNAT)"
assert_eq "$("$ND" udp-ask 127.0.0.1 5353 pong)" "echo:pong" "UDP to 127.0.0.1 (proxy)"
# Large transfers both ways through the proxy (splice) and DNAT.
head -c 3000000 /dev/urandom >"$WORK/www-b/big"
want=$(sha256sum <"$WORK/www-b/big" | cut -d' ' -f1)
assert_eq "$(get_here http://127.0.0.1:8080/big | sha256sum | cut -d' ' -f1)" "$want" "3 MB through the proxy"
assert_eq "$(ns C timeout 10 "$BB" wget -q -O - http://10.98.0.1:8080/big | sha256sum | cut -d' ' -f1)" "$want" "3 MB through DNAT"

echo "== conflicts are refused with Docker's message"
expect_fail "Bind for 0.0.0.0:8080 failed: port is already allocated" "$ND" publish ctr2 10.99.0.2 8080:80
expect_fail "Bind for 127.0.0.1:18080 failed: port is already allocated" "$ND" publish ctr2 10.99.0.2 127.0.0.1:18080:80
expect_fail "Bind for 0.0.0.0:5353 failed: port is already allocated" "$ND" publish ctr2 10.99.0.2 5353:53/udp
# the same port for the other protocol is free
"$ND" publish ctr2 10.99.0.2 5353:80/tcp >"$WORK/pub2" 2>&1 &
pub2=$!
pids+=("$pub2")
wait_ready "$WORK/pub2"
[ "$("$ND" owners | grep -c ctr2)" = 1 ] || fail "ctr2 has no rules"
kill -TERM "$pub2"
wait "$pub2" || fail "publisher ctr2 did not stop cleanly"
[ "$("$ND" owners | grep -c ctr2)" = 0 ] || fail "ctr2's rules stay after it stopped"

echo "== the userland proxy alone (no kernel path)"
"$ND" publish ctr3 10.99.0.2 --no-nat 9090:80 >"$WORK/pub3" 2>&1 &
pub3=$!
pids+=("$pub3")
wait_ready "$WORK/pub3"
grep -q '^kernel no' "$WORK/pub3" || fail "--no-nat installed rules"
assert_eq "$(get C http://10.98.0.1:9090/)" "hello from B" "C -> 9090 through the proxy"
kill -TERM "$pub3"
wait "$pub3"

echo "== 12 containers publishing and stopping at once (the rules' lock)"
par=()
for i in $(seq 12); do
  "$ND" publish "par$i" 10.99.0.2 "$((20000 + i)):80" >"$WORK/par$i" 2>&1 &
  par+=("$!")
  pids+=("$!")
done
for i in $(seq 12); do wait_ready "$WORK/par$i"; done
for i in $(seq 12); do
  grep -q '^kernel yes' "$WORK/par$i" || fail "par$i: no DNAT: $(cat "$WORK/par$i")"
done
assert_eq "$("$ND" owners | grep -c '^par')" 12 "every parallel publisher has its rules"
assert_eq "$(get C http://10.98.0.1:20007/)" "hello from B" "C -> a port published in parallel"
kill -TERM "${par[@]}"
for p in "${par[@]}"; do wait "$p" || fail "a parallel publisher did not stop cleanly"; done
assert_eq "$("$ND" owners | grep -c '^par')" 0 "parallel stops leave no rule"

echo "== remove_owner, keep_only: nothing of strata's left"
kill -TERM "$pub1"
wait "$pub1" || fail "publisher ctr1 did not stop cleanly"
"$ND" owners | grep -q ctr1 && fail "ctr1's rules stay after it stopped"
get C http://10.98.0.1:8080/ >/dev/null && fail "8080 still published after ctr1 stopped"
"$ND" owners | grep -qx net1 || fail "net1's rules went with ctr1's"
"$ND" keep-only net2 || fail "keep_only"
assert_eq "$("$ND" owners)" "net2" "keep_only keeps the live owner only"
get B http://10.98.0.2/ >/dev/null && fail "net1's masquerade stays after keep_only"
"$ND" network net3 br-test3 10.96.0.0/24 || fail "add_network net3"
"$ND" remove net2 || fail "remove_owner net2"
assert_eq "$("$ND" owners)" "net3" "remove_owner net2"
"$ND" keep-only || fail "keep_only (none)"
assert_eq "$(strata_rules)" 0 "nft list ruleset still mentions strata: $(nft list ruleset)"
"$ND" remove net3 || fail "remove_owner without a table"
echo "ok"
