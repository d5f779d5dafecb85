#!/usr/bin/env bash
# issue 13 item 5: `strata mount` (kernel overlay, and the one-layer bind)
# mounts nosuid,nodev: nobody running the image's setuid-root binary gets
# no euid 0, and cannot write to a device node in the image.
. "$(dirname "$0")/lib.sh"
need setpriv util-linux
[ -x /usr/bin/tini-static ] || skip "needs /usr/bin/tini-static (apt-get install tini)"
strata bootstrap busybox >/dev/null || fail "bootstrap"
mkdir -p "$WORK/ctx"
cp /usr/bin/tini-static "$WORK/ctx/s"
cat >"$WORK/ctx/Dockerfile" <<'DF'
FROM busybox
COPY --chmod=4755 s /s
RUN mknod /n c 1 3 && chmod 666 /n
DF
strata build -q -t suid "$WORK/ctx" >/dev/null || fail "build"
# The same as a one-layer image (mounted as a read-only bind).
strata export suid -o "$WORK/flat.tar" || fail "export"
strata import "$WORK/flat.tar" -t flat >/dev/null || fail "import"

check() { # image mount-dir [env...]
  local img=$1 mnt=$2; shift 2
  mkdir -p "$mnt"; chmod 755 "$mnt"
  env "$@" "$STRATA" mount --driver overlay "$img" "$mnt" || fail "mount $img"
  on_exit "'$STRATA' umount '$mnt' 2>/dev/null"
  [ -u "$mnt/s" ] || fail "$img: /s lost its setuid bit (the test would prove nothing)"
  [ -c "$mnt/n" ] || fail "$img: /n is not a device node"
  grep " $mnt " /proc/self/mountinfo | grep -q nosuid || fail "$img: mount on $mnt is not nosuid"
  local euid; euid=$(euid_via "$mnt/s")
  [ -n "$euid" ] || fail "$img: the payload did not run for nobody"
  [ "$euid" = "0" ] && fail "$img ($*): nobody got euid 0 from a setuid binary in a strata mount"
  as_nobody sh -c "echo x > '$mnt/n'" 2>/dev/null && fail "$img ($*): nobody wrote to a device node in a strata mount"
  "$STRATA" umount "$mnt" || fail "umount $mnt"
}
check suid "$WORK/m1"
check suid "$WORK/m2" STRATA_FORCE_FALLBACK=1
check flat "$WORK/m3"
check flat "$WORK/m4" STRATA_FORCE_FALLBACK=1
echo ok
