#!/usr/bin/env bash
# strata mount / umount / mounts with both drivers; --writable and --commit.
. "$(dirname "$0")/lib.sh"

strata bootstrap busybox >/dev/null || fail "bootstrap"
strata unpack busybox "$WORK/ref" || fail "unpack"
for driver in overlay fuse; do
  mnt=$WORK/mnt-$driver
  mkdir -p "$mnt"
  strata mount --driver $driver busybox "$mnt" || fail "mount $driver"
  on_exit "umount -l $mnt 2>/dev/null"
  [ "$(tree_dump "$mnt")" = "$(tree_dump "$WORK/ref")" ] || fail "$driver mount shows the image's files"
  strata mounts | grep -q "$mnt .*$driver .*ro .*busybox:latest .*mounted" || fail "mounts lists the $driver mount"
  touch "$mnt/newfile" 2>"$WORK/err" && fail "$driver: read-only mount accepted a write"
  assert_contains "$(cat "$WORK/err")" "Read-only file system" "$driver: EROFS"
  strata umount "$mnt" || fail "umount $driver"
  grep -q " $mnt " /proc/self/mountinfo && fail "$driver mount still there after umount"

  strata mount --driver $driver --writable busybox "$mnt" || fail "mount --writable $driver"
  echo hi > "$mnt/hello.txt" || fail "$driver: write in a writable mount"
  rm "$mnt/bin/ls" || fail "$driver: delete in a writable mount"
  strata umount --commit committed-$driver:1 "$mnt" >/dev/null || fail "umount --commit ($driver)"
  strata unpack committed-$driver:1 "$WORK/out-$driver" || fail "unpack committed"
  assert_eq "$(cat "$WORK/out-$driver/hello.txt")" "hi" "$driver: the new file is in the committed image"
  [ ! -e "$WORK/out-$driver/bin/ls" ] || fail "$driver: the deleted file is gone from the committed image"
  [ "$(strata inspect --format json committed-$driver:1 | grep -c '"sha256:')" -ge 4 ] || fail "one more layer"
done
# The FUSE process is killed: `strata umount` still clears the dead mount and
# its record, and nothing stays mounted.
mnt=$WORK/mnt-killed
mkdir -p "$mnt"
strata mount --driver fuse busybox "$mnt" || fail "mount for the kill test"
on_exit "umount -l $mnt 2>/dev/null"
pid=$(pgrep -f "strata-overlay .* $mnt\$") || fail "no strata-overlay process for $mnt"
kill -9 "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
stat "$mnt/bin" >/dev/null 2>&1 && fail "a dead FUSE mount still answered"
strata mounts | grep -q "$mnt .*fuse .*mounted" || fail "mounts lists the dead mount"
strata umount "$mnt" || fail "strata umount of a dead FUSE mount"
grep -q " $mnt " /proc/self/mountinfo && fail "the dead FUSE mount stayed"
[ -z "$(strata mounts | tail -n +2)" ] || fail "a record stayed: $(strata mounts)"
# Mounting over a live strata mount is refused (it would drop its writable layer).
strata mount --driver fuse --writable busybox "$mnt" || fail "mount --writable"
echo kept > "$mnt/kept.txt"
expect_fail "already a strata mount" strata mount --driver overlay busybox "$mnt"
assert_eq "$(cat "$mnt/kept.txt")" "kept" "the first mount's writes survive a refused second mount"
strata umount "$mnt" || fail "umount"

strata verify >/dev/null || fail "verify after commits"
echo ok
