#!/usr/bin/env bash
# Published ports: TCP throughput and connection set-up through a published
# port against the veth floor (the same path without NAT), all inside
# network namespaces of this script's own (it re-executes itself under
# `unshare -n`; nothing touches the host's network).
#
#   bench/network.sh [BUILD_DIR] [RUNS] [MIB]     (root; RUNS 5, MIB 1024)
#   CASES="floor-fwd dnat-fwd" CONNECTS=20 bench/network.sh ...   (a subset)
#
# Namespaces: A "the host" (this script's), B "the container" (10.99.0.2,
# veth to A's 10.99.0.1, a TCP sink on :5001), C "a client outside"
# (10.98.0.2, veth to A's 10.98.0.1, routed to B through A). Published with
# strata-netdriver (network::PublishedPorts: nftables DNAT + the userland
# proxy) as -p 15001:5001. Each case sends MIB MiB (tcp-send: write until
# done, wait for the sink's close) and makes 200 connections (connect, 1
# byte, close; median); cases alternate, RUNS rounds, medians printed:
#   floor-local   A -> 10.99.0.2:5001          (routed veth, no NAT)
#   dnat-local    A -> 10.99.0.1:15001         (output-chain DNAT)
#   proxy         A -> 127.0.0.1:15001         (strata's proxy, splice)
#   docker-proxy  A -> 127.0.0.1:15002         (Debian's docker-proxy, when installed)
#   floor-fwd     C -> 10.99.0.2:5001          (forwarded by A, no NAT)
#   dnat-fwd      C -> 10.98.0.1:15001         (prerouting DNAT, forwarded)
#   podman-floor-fwd C -> the podman container's address:5001 (its bridge, no NAT)
#   podman-fwd    C -> 10.98.0.1:15003         (podman run -p: CNI portmap DNAT,
#                                              compared with podman-floor-fwd)
# podman: `podman run --rootfs /:O ...` (the host's root as an overlay: no
# image needed) on its default CNI network, which podman sets up inside
# namespace A, when podman is installed; SKIP_PODMAN=1 leaves it out. If
# podman cannot run here, the script says so and prints no figure for it.
set -euo pipefail
if [ -z "${STRATA_BENCH_NETNS:-}" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 2; }
  STRATA_BENCH_NETNS=1 exec unshare -n bash "$0" "$@"
fi
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
runs=${2:-5}
mib=${3:-1024}
nd=$build/tests/unit/network/strata-netdriver
[ -x "$nd" ] || { echo "build first: $nd missing (ninja strata_netdriver)" >&2; exit 2; }
"$nd" available >/dev/null || { echo "nftables unavailable: $("$nd" available)" >&2; exit 2; }

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "${podman_ctr:-}" ]; then podman rm -f "$podman_ctr" >/dev/null 2>&1 || true; fi
  wait 2>/dev/null || true
}
trap cleanup EXIT
declare -A NS
peer() { # NAME HOSTDEV HOSTADDR PEERADDR ROUTE
  unshare -n sleep 100000 &
  local pid=$!
  pids+=("$pid")
  NS[$1]=$pid
  for _ in $(seq 100); do
    [ "$(readlink /proc/$pid/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break
    sleep 0.02
  done
  ip link add "$2" type veth peer name eth0 netns "$pid"
  ip addr add "$3/24" dev "$2"
  ip link set "$2" up
  nsenter -t "$pid" -n sh -c "ip link set lo up; ip addr add $4/24 dev eth0; ip link set eth0 up; ip route add default via $3"
}
ns() { local n=$1; shift; nsenter -t "${NS[$n]}" -n "$@"; }

ip link set lo up
sysctl -qw net.ipv4.ip_forward=1
peer B vb0 10.99.0.1 10.99.0.2
peer C vc0 10.98.0.1 10.98.0.2
nsenter -t "${NS[B]}" -n "$nd" tcp-sink 5001 &
pids+=("$!")
"$nd" network benchnet vb0 10.99.0.0/24
"$nd" publish benchctr 10.99.0.2 15001:5001 >/tmp/strata-bench-net.$$ 2>&1 &
pids+=("$!")
for _ in $(seq 100); do grep -q '^ready' /tmp/strata-bench-net.$$ && break; sleep 0.05; done
grep -q '^kernel yes' /tmp/strata-bench-net.$$ || { cat /tmp/strata-bench-net.$$; exit 1; }
rm -f /tmp/strata-bench-net.$$

cases=(floor-local dnat-local proxy floor-fwd dnat-fwd)
if command -v docker-proxy >/dev/null; then
  docker-proxy -proto tcp -host-ip 127.0.0.1 -host-port 15002 -container-ip 10.99.0.2 \
    -container-port 5001 3>/dev/null & # it reports readiness on fd 3 (then closes it)
  pids+=("$!")
  cases+=(docker-proxy)
fi
podman_note=""
if [ -z "${SKIP_PODMAN:-}" ] && command -v podman >/dev/null; then
  # The sink itself, run by podman from the host's root (an overlay: writes are thrown away).
  # (The limits: runc cannot raise RLIMIT_NOFILE/NPROC to podman's defaults where
  # strata's sandbox lacks CAP_SYS_RESOURCE.)
  if podman_ctr=$(podman run -d --rm --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    -p 15003:5001 --rootfs /:O "$nd" tcp-sink 5001 2>/tmp/strata-bench-podman.$$); then
    podman_ip=$(podman inspect --format '{{.NetworkSettings.IPAddress}}' "$podman_ctr")
    sleep 1
    if ns C "$nd" tcp-send 10.98.0.1 15003 1 >/dev/null 2>&1; then
      cases+=(podman-floor-fwd podman-fwd)
    else
      podman_note="podman started but its published port was not reachable here"
    fi
  else
    podman_note="podman could not run here: $(tail -1 /tmp/strata-bench-podman.$$)"
    podman_ctr=""
  fi
  rm -f /tmp/strata-bench-podman.$$
fi

# CASES="floor-fwd dnat-fwd" measures only those (in that order, alternating).
if [ -n "${CASES:-}" ]; then
  read -r -a wanted <<<"$CASES"
  for w in "${wanted[@]}"; do
    [[ " ${cases[*]} " == *" $w "* ]] || { echo "no case $w here (cases: ${cases[*]})" >&2; exit 2; }
  done
  cases=("${wanted[@]}")
fi
connects=${CONNECTS:-200}
target() {
  case $1 in
    floor-local) echo "A 10.99.0.2 5001" ;;
    dnat-local) echo "A 10.99.0.1 15001" ;;
    proxy) echo "A 127.0.0.1 15001" ;;
    docker-proxy) echo "A 127.0.0.1 15002" ;;
    floor-fwd) echo "C 10.99.0.2 5001" ;;
    dnat-fwd) echo "C 10.98.0.1 15001" ;;
    podman-fwd) echo "C 10.98.0.1 15003" ;;
    podman-floor-fwd) echo "C $podman_ip 5001" ;;
  esac
}
run_in() { local where=$1; shift; if [ "$where" = A ]; then "$@"; else ns "$where" "$@"; fi; }
declare -A TP LAT
for ((r = 0; r < runs; r++)); do
  for c in "${cases[@]}"; do
    read -r where host port <<<"$(target "$c")"
    TP[$c]+="$(run_in "$where" "$nd" tcp-send "$host" "$port" "$mib") "
    LAT[$c]+="$(run_in "$where" "$nd" tcp-connect "$host" "$port" "$connects") "
  done
done
median() { tr ' ' '\n' | awk 'NF' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| case | MiB/s (median of $runs) | vs floor | connect+1B+close µs (median) |"
echo "|---|---|---|---|"
floor_local=$(echo "${TP[floor-local]:-}" | median)
floor_fwd=$(echo "${TP[floor-fwd]:-}" | median)
for c in "${cases[@]}"; do
  tp=$(echo "${TP[$c]}" | median)
  lat=$(echo "${LAT[$c]}" | median)
  case $c in podman-fwd) f=$(echo "${TP[podman-floor-fwd]}" | median) ;; *-fwd) f=$floor_fwd ;; *) f=$floor_local ;; esac
  printf '| %s | %s | %s | %s |\n' "$c" "$tp" "$(awk -v a="$tp" -v b="$f" 'BEGIN {if (b > 0) printf "%.0f%%", 100 * a / b; else printf "-"}')" "$lat"
done
[ -z "$podman_note" ] || echo "podman: $podman_note"
