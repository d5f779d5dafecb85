#!/usr/bin/env bash
# issue 13, item 2: host devices. CAP_MKNOD is kept (as Docker), so the
# device cgroup is what stops a container from opening a node it made or one
# planted in an image layer: Docker's policy allows only null, zero, full,
# random, urandom, tty, console, ptmx, the pts (and tun); --device adds one.
# Before the fix, `mknod /tmp/k c 1 11` then writing to it reached the host's
# kernel log. Performed from `strata run` and from a build's RUN step.
. "$(dirname "$0")/secure_lib.sh"
need busybox
[ -c /dev/kmsg ] || skip "needs the host's /dev/kmsg"

R=$WORK/plain; rootfs "$R"
# A node planted in an image layer: the host's kernel log (c 1:11).
mkdir -p "$R/planted"; mknod "$R/planted/kmsg" c 1 11; chmod 666 "$R/planted/kmsg"
image devs "$R"

probe='mknod /tmp/k c 1 11 && echo made
echo strata-security-test > /tmp/k || echo k-denied
echo strata-security-test > /planted/kmsg || echo planted-denied
head -c 3 /dev/zero | wc -c; echo x > /dev/null && echo null-ok; head -c 4 /dev/urandom | wc -c'
out=$(strata run --rm devs sh -c "$probe" 2>&1) || fail "run: $out"
assert_contains "$out" "made" "mknod is allowed (CAP_MKNOD, as Docker)"
assert_eq "$(grep -c 'Operation not permitted' <<<"$out")" 2 \
  "writing to a node made with mknod and to one planted in the image must fail with EPERM: $out"
assert_contains "$out" "3
null-ok
4" "the standard devices work"
# The cgroup is gone after the run (compared with the directories before:
# a strata killed by SIGKILL elsewhere leaves its own behind).
cgroups() { find /sys/fs/cgroup/devices/strata /sys/fs/cgroup/strata -mindepth 1 -maxdepth 1 -type d 2>/dev/null | sort; }
before=$(cgroups)
strata run --rm devs true || fail "run true"
assert_eq "$(cgroups)" "$before" "a container's cgroup was left behind"

# The same from a build's RUN step: the step succeeds only when both writes
# are refused with EPERM.
build_ok 'FROM devs
RUN mknod /tmp/k c 1 11 && ! (echo strata-security-test > /tmp/k) 2>/tmp/e && grep -q "Operation not permitted" /tmp/e
RUN ! (echo strata-security-test > /planted/kmsg) 2>/tmp/e && grep -q "Operation not permitted" /tmp/e && echo x > /dev/null'

# --device adds exactly one device, with its permissions.
if [ -c /dev/fuse ]; then
  out=$(strata run --rm --device /dev/fuse devs sh -c '
    ls -l /dev/fuse; exec 3<>/dev/fuse && echo fuse-rw
    (echo strata-security-test > /planted/kmsg) 2>/dev/null || echo kmsg-denied' 2>&1) || fail "--device: $out"
  assert_contains "$out" "10,"
  assert_contains "$out" "fuse-rw"
  assert_contains "$out" "kmsg-denied"
  out=$(strata run --rm --device /dev/fuse:/dev/myfuse:r devs sh -c '
    exec 3</dev/myfuse && echo read-ok; (exec 4>/dev/myfuse) 2>/dev/null || echo write-denied' 2>&1) || fail "--device :r: $out"
  assert_contains "$out" "read-ok"
  assert_contains "$out" "write-denied"
fi
expect_fail 'error gathering device information while adding custom device "/etc/passwd": not a device node' \
  strata run --rm --device /etc/passwd devs true
expect_fail 'invalid device mode: rwx' strata run --rm --device /dev/null:/dev/n:rwx devs true
echo ok
