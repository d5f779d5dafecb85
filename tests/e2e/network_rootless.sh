#!/usr/bin/env bash
# strata run -p as a non-root user, as rootless podman: the container's
# network namespace (made in strata's user namespace) is connected by pasta
# (or slirp4netns, each one tested when installed), a published port on
# 127.0.0.1 reaches a server in the container, the container's resolv.conf
# names the helper's nameserver, a taken port is refused with Docker's
# message, and nothing (helper, port) is left after the run.
#
# Run as root: it makes a private network namespace (nothing touches the
# host's network) with an interface and a default route for pasta to copy,
# a /dev/net/tun the user may open (as Debian's udev makes it) in a private
# mount namespace, and switches to the user nobody with setpriv.
. "$(dirname "$0")/lib.sh"

if [ -z "${STRATA_E2E_NETNS:-}" ]; then
  [ "$(id -u)" -eq 0 ] || skip "needs root (to make a private network namespace and switch users)"
  need setpriv util-linux
  need unshare util-linux
  need ip iproute2
  need busybox busybox-static
  command -v pasta >/dev/null || command -v slirp4netns >/dev/null ||
    skip "needs pasta (apt-get install passt) or slirp4netns (apt-get install slirp4netns)"
  [ -c /dev/net/tun ] || skip "needs /dev/net/tun"
  id -u nobody >/dev/null 2>&1 || skip "needs the user nobody"
  setpriv --reuid=65534 --regid=65534 --clear-groups unshare --user --map-root-user true 2>/dev/null ||
    skip "needs unprivileged user namespaces (sysctl user.max_user_namespaces > 0)"
  STRATA_E2E_NETNS=1 unshare --net --mount --propagation private bash "$0"
  exit $?
fi

# ---- inside private network and mount namespaces, as root ----
ip link set lo up
ip link add up0 type veth peer name up1 || skip "cannot make a veth pair"
ip addr add 192.0.2.1/24 dev up0 && ip link set up0 up && ip link set up1 up &&
  ip route add default via 192.0.2.254 || fail "host side of the private namespace"
mkdir "$WORK/dev"
mount -t tmpfs -o mode=755 tmpfs "$WORK/dev" || skip "cannot mount a tmpfs for /dev/net/tun"
on_exit "umount /dev/net/tun 2>/dev/null; umount -l '$WORK/dev'"
mknod -m 666 "$WORK/dev/tun" c 10 200 && mount --bind "$WORK/dev/tun" /dev/net/tun ||
  skip "cannot provide /dev/net/tun to the user"

chmod 755 "$WORK"
U=$WORK/nobody
mkdir -p "$U"
chown 65534:65534 "$U"
s() {
  exec_s "$@" &
  wait $!
}
# exec_s: strata as nobody, in place of this (sub)shell (its pid is strata's).
exec_s() {
  exec setpriv --reuid=65534 --regid=65534 --clear-groups \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$U" XDG_DATA_HOME="$U/data" \
    ${BACKEND:+STRATA_ROOTLESS_NETWORK=$BACKEND} "$STRATA" "$@"
}
# helpers_left: pasta (passt.avx2 once running) or slirp4netns processes of the user.
helpers_left() { pgrep -u 65534 -f '^(pasta|passt|slirp4netns)' || true; }
port_bound() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

s bootstrap busybox >/dev/null || fail "bootstrap as nobody"

tested=0
for BACKEND in pasta slirp4netns; do
  command -v "$BACKEND" >/dev/null || { echo "$BACKEND is not installed: not tested"; continue; }
  tested=$((tested + 1))
  # A server in the container, reached through the published port.
  (exec_s run --rm -p 127.0.0.1:18080:8080 busybox \
    sh -c 'echo hello-$0 >/tmp/index.html && exec httpd -f -p 8080 -h /tmp' "$BACKEND") &
  pid=$!
  out=
  for _ in $(seq 100); do
    out=$(timeout 5 busybox wget -qO- http://127.0.0.1:18080/index.html 2>/dev/null) && break
    sleep 0.1
  done
  assert_eq "$out" "hello-$BACKEND" "$BACKEND: the published port"
  kill -TERM "$pid"
  wait "$pid"
  for _ in $(seq 50); do [ -z "$(helpers_left)" ] && break; sleep 0.1; done
  [ -z "$(helpers_left)" ] || fail "$BACKEND: helper left: $(helpers_left | xargs -r ps -o pid,user,args -p)"
  ! port_bound 18080 || fail "$BACKEND: 18080 still bound after the run"

  # The helper's nameserver in resolv.conf, --dns replacing it.
  case $BACKEND in pasta) ns=169.254.1.1 ;; *) ns=10.0.2.3 ;; esac
  out=$(s run --rm -p 18081:80 busybox cat /etc/resolv.conf) || fail "$BACKEND: resolv.conf: $out"
  assert_contains "$out" "nameserver $ns" "$BACKEND: resolv.conf"
  out=$(s run --rm -p 18081:80 --dns 10.1.2.3 busybox cat /etc/resolv.conf) || fail "$BACKEND: --dns: $out"
  assert_contains "$out" "nameserver 10.1.2.3" "$BACKEND: --dns"
  # --network none keeps the loopback-only namespace, no helper.
  out=$(s run --rm --network none busybox ip -o link) || fail "$BACKEND: --network none: $out"
  [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "$BACKEND: --network none has links: $out"
done
[ "$tested" -gt 0 ] || fail "neither pasta nor slirp4netns was tested"

# A taken host port: Docker's message, nothing started.
mkdir "$WORK/www"
busybox httpd -f -p 127.0.0.1:18082 -h "$WORK/www" &
httpd_pid=$!
on_exit "kill $httpd_pid 2>/dev/null"
for _ in $(seq 50); do port_bound 18082 && break; sleep 0.1; done
port_bound 18082 || fail "could not occupy 127.0.0.1:18082 for the test"
expect_fail "Bind for 127.0.0.1:18082 failed: port is already allocated" \
  s run --rm -p 127.0.0.1:18082:80 busybox true
[ -z "$(helpers_left)" ] || fail "a helper was left after the refused run"
echo "network_rootless: ok ($tested helper(s))"
