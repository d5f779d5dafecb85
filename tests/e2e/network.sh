#!/usr/bin/env bash
# Bridge networks (issue #16): the default bridge for run as root, user-defined
# networks (create/ls/inspect/rm/prune/connect/disconnect), containers reaching
# each other and the host reaching them, --ip, --network-alias, --add-host
# host-gateway, 20 parallel starts with distinct addresses, crash recovery
# (a monitor killed by SIGKILL), and no link or address left behind.
# Everything happens in a network namespace of the test's own: the script
# re-executes itself under `unshare -n` before touching anything.
. "$(dirname "$0")/own_netns.sh"
. "$(dirname "$0")/lib.sh"

cleanup() {
  for id in $("$STRATA" ps -aq --no-trunc 2>/dev/null); do "$STRATA" rm -f "$id" >/dev/null 2>&1; done
}
on_exit cleanup

strata bootstrap busybox >/dev/null || fail "bootstrap"

# --- forwarding off in this namespace: Docker's warning, strata leaves the sysctl alone
sysctl -qw net.ipv4.ip_forward=0
out=$(strata run --rm busybox true 2>&1) || fail "run on the default bridge: $out"
assert_contains "$out" "WARNING: IPv4 forwarding is disabled. Networking will not work." "ip_forward warning"
assert_eq "$(sysctl -n net.ipv4.ip_forward)" "0" "strata must not change ip_forward"
sysctl -qw net.ipv4.ip_forward=1
out=$(strata run --rm busybox true 2>&1) || fail "run: $out"
assert_eq "$out" "" "no warning with forwarding on"

# --- predefined networks
out=$(strata network ls)
assert_contains "$out" "NETWORK ID     NAME      DRIVER    SCOPE" "network ls header"
assert_eq "$(strata network ls --format '{{.Name}} {{.Driver}} {{.Scope}}' | tr '\n' ' ')" \
  "bridge bridge local host host local none null local " "predefined networks"
assert_eq "$(strata network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}' bridge)" \
  "172.17.0.0/16 172.17.0.1" "default bridge subnet"
expect_fail "bridge is a pre-defined network and cannot be removed" strata network rm bridge

# --- the default bridge: eth0 with an address, the hostname on it, a default route
out=$(strata run --rm --hostname box busybox sh -c 'ip -4 -o addr show eth0; ip route; cat /etc/hosts')
echo "$out" | grep -qE 'eth0 +inet 172\.17\.0\.[0-9]+/16' || fail "eth0 on the default bridge: $out"
assert_contains "$out" "default via 172.17.0.1 dev eth0" "default route"
echo "$out" | grep -qE '^172\.17\.0\.[0-9]+[[:space:]]+box$' || fail "/etc/hosts line of the hostname: $out"
out=$(strata run --rm --add-host gw:host-gateway busybox cat /etc/hosts)
echo "$out" | grep -qE '^172\.17\.0\.1[[:space:]]+gw$' || fail "host-gateway is the bridge's gateway: $out"
assert_eq "$(strata run --rm --network none busybox sh -c 'ls /sys/class/net | tr "\n" " "')" "lo " "--network none"
# The bridge stays (Docker's docker0); the containers' veths go with their namespaces.
ip -o link show strata0 >/dev/null || fail "strata0 is the default bridge"
veths_gone() {
  for _ in $(seq 100); do ip -o link | grep -q ' veth' || return 0; sleep 0.05; done
  fail "veths left: $(ip -o link)"
}
veths_gone

# --- user-defined networks
id=$(strata network create app) || fail "network create"
[[ "$id" =~ ^[0-9a-f]{64}$ ]] || fail "network create prints the id: $id"
expect_fail "network with name app already exists" strata network create app
expect_fail "network nope not found" strata run --rm --network nope busybox true
assert_eq "$(strata network inspect -f '{{.Name}} {{.Driver}} {{.Scope}} {{.Internal}} {{range .IPAM.Config}}{{.Subnet}}{{end}}' app)" \
  "app bridge local false 172.18.0.0/16" "network inspect"
strata network create --subnet 10.99.0.0/24 --gateway 10.99.0.254 --label team=a fixed >/dev/null || fail "create --subnet"
strata network create --internal int >/dev/null || fail "create --internal"
assert_eq "$(strata network ls -q --filter name=fix)" "$(strata network inspect -f '{{.Id}}' fixed | cut -c1-12)" "ls -q --filter"
assert_eq "$(strata network ls --filter label=team=a --format '{{.Name}}')" "fixed" "ls --filter label"
assert_eq "$(strata network ls --filter type=custom --format '{{.Name}}' | tr '\n' ' ')" "app fixed int " "ls --filter type=custom"
expect_fail "Pool overlaps" strata network create --subnet 10.99.0.128/25 other

# A server and a client on app.
web=$(strata run -d --name web --network app --network-alias www busybox \
  sh -c 'mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www') || fail "run -d web"
ip=$(strata inspect -f '{{.NetworkSettings.Networks.app.IPAddress}}' web)
assert_eq "$ip" "172.18.0.2" "first address of app"
assert_eq "$(strata inspect -f '{{.NetworkSettings.Networks.app.Gateway}} {{.NetworkSettings.Networks.app.IPPrefixLen}} {{.NetworkSettings.Networks.app.MacAddress}}' web)" \
  "172.18.0.1 16 02:42:ac:12:00:02" "NetworkSettings of web"
assert_eq "$(strata inspect -f '{{index .NetworkSettings.Networks.app.Aliases 0}}' web)" "www" "Aliases"
assert_eq "$(strata inspect -f '{{.HostConfig.NetworkMode}}' web)" "app" "NetworkMode"
out=$(strata network inspect -f '{{range $k, $v := .Containers}}{{$v.Name}} {{$v.IPv4Address}}{{end}}' app)
assert_eq "$out" "web 172.18.0.2/16" "network inspect Containers"
for i in $(seq 50); do
  out=$(bash -c "exec 3<>/dev/tcp/$ip/80 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3" 2>/dev/null) && break
  sleep 0.1
done
assert_contains "$out" "hello-from-web" "host -> container"
assert_eq "$(strata run --rm --network app busybox wget -qO- "http://$ip/")" "hello-from-web" "container -> container"
strata run --rm --network app busybox ping -c 1 -W 2 "$ip" >/dev/null || fail "ping container -> container"
strata run --rm --network app busybox ping -c 1 -W 2 172.18.0.1 >/dev/null || fail "ping the gateway"
# Another network cannot be reached without a route: fixed's container has only its own.
out=$(strata run --rm --network fixed --ip 10.99.0.99 busybox ip -4 -o addr show eth0)
assert_contains "$out" "inet 10.99.0.99/24" "--ip"
expect_fail "user specified IP address is supported on user defined networks only" \
  strata run --rm --ip 172.17.0.9 busybox true
expect_fail "user specified IP address is supported only when connecting to networks with user configured subnets" \
  strata run --rm --network app --ip 172.18.0.9 busybox true
expect_fail "It does not belong to any of this network's subnets" \
  strata run --rm --network fixed --ip 10.98.0.9 busybox true
expect_fail "network-scoped alias is supported only for containers in user defined networks" \
  strata run --rm --network-alias x busybox true
expect_fail "has active endpoints" strata network rm app

# The embedded DNS server: names, aliases and ids of the containers on app.
out=$(strata run --rm --network app busybox cat /etc/resolv.conf)
assert_contains "$out" "nameserver 127.0.0.11" "resolv.conf on a user network"
assert_contains "$out" "options ndots:0" "ndots on a user network"
assert_contains "$(strata run --rm --network app busybox nslookup web 2>&1)" "172.18.0.2" "nslookup web"
assert_eq "$(strata run --rm --network app busybox wget -qO- http://web/)" "hello-from-web" "wget by name"
# A --rm container gives its address back only once its veth carries no
# more traffic (the kernel deletes the namespace it leaves later): else the
# next container given the address shares it, MAC and all, with the dying
# namespace, which takes and resets replies meant for it (a client hung in
# CI so). Right after each run, the one port of app's bridge that is up is
# web's.
br=br-$(strata network inspect -f '{{.Id}}' app | cut -c1-12)
for i in 1 2 3 4 5; do
  strata run --rm --network app busybox true || fail "run --rm on app"
  assert_eq "$(ip -o link show master "$br" up | wc -l)" "1" "only web's port of $br is up after a --rm container (round $i)"
  assert_eq "$(timeout 60 "$STRATA" run --rm --network app busybox wget -qO- http://web/)" "hello-from-web" "wget by name on a reused address (round $i)"
done
assert_eq "$(strata run --rm --network app busybox wget -qO- http://www/)" "hello-from-web" "wget by alias"
assert_eq "$(strata run --rm --network app busybox wget -qO- "http://${web:0:12}/")" "hello-from-web" "wget by short id"
strata run --rm --network app busybox ping -c 1 -W 2 web.app >/dev/null || fail "ping web.app"
out=$(strata run --rm busybox cat /etc/resolv.conf)
[[ "$out" == *127.0.0.11* ]] && fail "no embedded DNS on the default bridge: $out"

# Published ports: the proxy on 127.0.0.1, DNAT (nftables) on the other addresses.
pub=$(strata run -d --network app -p 18080:80 busybox \
  sh -c 'mkdir -p /www && echo hello-published > /www/index.html && exec httpd -f -p 80 -h /www') || fail "run -p"
assert_eq "$(strata port "$pub")" "80/tcp -> 0.0.0.0:18080" "strata port"
assert_eq "$(strata inspect -f '{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}' "$pub")" "18080" "NetworkSettings.Ports"
for host in 127.0.0.1 172.18.0.1; do
  for i in $(seq 50); do
    out=$(bash -c "exec 3<>/dev/tcp/$host/18080 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3" 2>/dev/null) && break
    sleep 0.1
  done
  assert_contains "$out" "hello-published" "published port via $host"
done
strata rm -f "$pub" >/dev/null

# connect / disconnect on a stopped container: the networks of its next start.
strata create --name multi --network app busybox sh -c 'ip -4 -o addr; sleep 30' >/dev/null || fail "create"
strata network connect --ip 10.99.0.50 fixed multi || fail "network connect"
expect_fail "already exists in network fixed" strata network connect fixed multi
strata start multi >/dev/null || fail "start multi"
assert_eq "$(strata inspect -f '{{.NetworkSettings.Networks.fixed.IPAddress}}' multi)" "10.99.0.50" "connected network"
assert_eq "$(strata inspect -f '{{.NetworkSettings.Networks.app.IPAddress}}' multi)" "172.18.0.3" "mode network"
strata rm -f multi >/dev/null

# --- 20 containers started in parallel get 20 distinct addresses
ids=()
for i in $(seq 20); do strata run -d --network fixed busybox sleep 60 >"$WORK/par.$i" & done
wait
for i in $(seq 20); do ids+=("$(cat "$WORK/par.$i")"); done
addrs=$(for id in "${ids[@]}"; do strata inspect -f '{{.NetworkSettings.Networks.fixed.IPAddress}}' "$id"; done | sort -u | grep -c .)
assert_eq "$addrs" "20" "distinct addresses of 20 parallel starts"
strata rm -f "${ids[@]}" >/dev/null || fail "rm -f the 20"

# --- crash recovery: a monitor killed by SIGKILL; the next network command cleans up
rec=$(strata run -d --network int busybox sleep 60) || fail "run on int"
dev="br-$(strata network inspect -f '{{.Id}}' int | cut -c1-12)"
ip -o link show "$dev" >/dev/null || fail "the bridge of int exists while a container runs"
have_nft=0
command -v nft >/dev/null && nft list ruleset >/dev/null 2>&1 && have_nft=1
if [ "$have_nft" = 1 ]; then
  nft list ruleset | grep -q "strata:$(strata network inspect -f '{{.Id}}' int)" || fail "internal network rules: $(nft list ruleset)"
fi
intid=$(strata network inspect -f '{{.Id}}' int)
hv=$(sed -n 's/.*"HostVeth":"\([^"]*\)".*/\1/p' "$STRATA_ROOT/networks/$intid/endpoints/$rec.json")
ip -o link show "$hv" >/dev/null || fail "the container's veth $hv"
kill -9 "$(cat "$STRATA_ROOT/containers/$rec/monitor.pid")"
sleep 0.5
assert_eq "$(strata network inspect -f '{{len .Containers}}' int)" "0" "a dead owner's endpoint is not listed"
[ -n "$(ls "$STRATA_ROOT/networks/$intid/endpoints")" ] || fail "the stale endpoint file is there before recovery"
strata network ls >/dev/null
assert_eq "$(ls "$STRATA_ROOT/networks/$intid/endpoints")" "" "stale endpoint swept by the next network command"
for _ in $(seq 100); do ip -o link show "$hv" >/dev/null 2>&1 || break; sleep 0.05; done
ip -o link show "$hv" >/dev/null 2>&1 && fail "the crashed container's veth $hv is left"
strata rm -f "$rec" >/dev/null
strata network rm int >/dev/null || fail "network rm int"
ip -o link show "$dev" >/dev/null 2>&1 && fail "network rm leaves its bridge: $(ip -o link)"
if [ "$have_nft" = 1 ]; then
  nft list ruleset | grep -q "strata:$intid" && fail "network rm leaves its rules: $(nft list ruleset)"
fi

# --- removal
strata rm -f web >/dev/null
strata network rm app || fail "network rm app"
expect_fail "network app not found" strata network rm app
out=$(strata network prune -f)
assert_contains "$out" "Deleted Networks:" "prune output"
assert_contains "$out" "fixed" "prune removes fixed"
assert_eq "$(strata network ls --format '{{.Name}}' | tr '\n' ' ')" "bridge host none " "only the predefined networks left"

# --- nothing left behind in this namespace but the default bridge (Docker's docker0)
veths_gone
assert_eq "$(ip -o link | awk -F': ' '{print $2}' | sed 's/@.*//' | tr '\n' ' ')" "lo strata0 " "links left: $(ip -o link)"
assert_eq "$(ip -o -4 addr | awk '{print $2, $4}' | tr '\n' ' ')" "lo 127.0.0.1/8 strata0 172.17.0.1/16 " "addresses left"
if [ "$have_nft" = 1 ]; then
  assert_eq "$(nft list ruleset | grep -o 'strata:[0-9a-f]*' | sort -u)" \
    "strata:$(strata network inspect -f '{{.Id}}' bridge)" "nft rules left (only the default bridge's)"
fi
echo "network e2e: ok"
