#!/usr/bin/env bash
# An image that `strata mount --writable` uses cannot be removed from under
# the mount: rmi refuses (as Docker refuses an image a container uses), rmi
# -f removes the name with a warning and keeps the image (<none>) so that
# `umount --commit` still works; a writable layer that no mount record uses
# any more (a crash) is listed by `strata mounts` and removed by `strata gc`,
# and a live mount's is not. Needs root and overlayfs (overlay probe).
. "$(dirname "$0")/lib.sh"

strata bootstrap busybox >/dev/null || fail "bootstrap"
strata tag busybox mnt:1 || fail "tag"
strata rmi busybox >/dev/null || fail "rmi busybox" # mnt:1 is the image's only name
mnt=$WORK/mnt
mkdir -p "$mnt"
strata mount --driver overlay --writable mnt:1 "$mnt" || fail "mount --writable"
on_exit "umount -l $mnt 2>/dev/null"
echo hi >"$mnt/hello.txt" || fail "write in the mount"

expect_fail "conflict: unable to remove repository reference \"mnt:1\" (must force) - mount $mnt is using its referenced image" \
  strata rmi mnt:1
strata images | grep -q '^mnt ' || fail "a refused rmi keeps the name"
# Another name of the same image can go: the image stays (as Docker untags).
strata tag mnt:1 mnt:2 || fail "tag mnt:2"
strata rmi mnt:2 >/dev/null || fail "rmi of another name of a mounted image"

strata rmi -f mnt:1 >"$WORK/out" 2>"$WORK/err" || { cat "$WORK/err"; fail "rmi -f"; }
assert_contains "$(cat "$WORK/err")" "warning: mnt:1 is mounted on $mnt" "rmi -f warns"
assert_contains "$(cat "$WORK/out")" "Untagged: mnt:1" "rmi -f removes the name"
strata gc >/dev/null || fail "gc"
[ -f "$mnt/bin/busybox" ] || fail "the mounted image's files are still there after rmi -f and gc"
strata umount --commit after:1 "$mnt" >/dev/null || fail "umount --commit after rmi -f"
strata unpack after:1 "$WORK/out-after" >/dev/null || fail "unpack"
assert_eq "$(cat "$WORK/out-after/hello.txt")" "hi" "the writes are committed"

# Orphaned writable layers: listed and collected; a live mount's is kept.
strata mount --driver overlay --writable after:1 "$mnt" || fail "mount again"
mkdir -p "$STRATA_ROOT/mounts/rw-0123456789abcdef/upper" "$STRATA_ROOT/mounts/rw-0123456789abcdef/work"
echo lost >"$STRATA_ROOT/mounts/rw-0123456789abcdef/upper/lost.txt"
strata mounts >"$WORK/mounts" || fail "mounts"
grep -q "rw-0123456789abcdef .*orphaned upper" "$WORK/mounts" || { cat "$WORK/mounts"; fail "mounts lists the orphan"; }
grep -q "^$mnt .*mounted" "$WORK/mounts" || { cat "$WORK/mounts"; fail "mounts still lists the live mount"; }
strata gc >"$WORK/gc" || fail "gc"
assert_contains "$(cat "$WORK/gc")" "removed orphaned mount upper $STRATA_ROOT/mounts/rw-0123456789abcdef" "gc says so"
[ ! -e "$STRATA_ROOT/mounts/rw-0123456789abcdef" ] || fail "gc removes the orphan"
echo more >"$mnt/more.txt" || fail "the live mount's writable layer survived gc"
strata umount --commit after:2 "$mnt" >/dev/null || fail "umount --commit of the live mount"
strata unpack after:2 "$WORK/out2" >/dev/null || fail "unpack after:2"
assert_eq "$(cat "$WORK/out2/more.txt")" "more" "the live mount's writes are kept"
echo "mount_rmi: all checks passed"
