#!/usr/bin/env bash
# issue 13 item 6: gc never removes what is in use. While a build runs a long
# RUN, a `run --scratch disk` writes, a `load` streams a big archive and an
# image is mounted (its name removed), gc runs in a loop with every tmp/
# entry backdated by hours (the old rule removed tmp/ entries by age, and
# every unnamed blob and snapshot at once). Every operation must succeed and
# `strata verify` must find the store whole.
. "$(dirname "$0")/lib.sh"
need python3
strata bootstrap busybox >/dev/null || fail "bootstrap"
C=$WORK/ctx; mkdir -p "$C"

# A big image in an archive, not in the store.
printf 'FROM busybox\nRUN dd if=/dev/urandom of=/big bs=1M count=48 2>/dev/null && md5sum /big > /big.md5\n' >"$C/Dockerfile.big"
strata build -q -t big -f "$C/Dockerfile.big" "$C" >/dev/null || fail "build big"
strata save big -o "$WORK/big.tar" --format docker || fail "save"
strata rmi big >/dev/null || fail "rmi big"
rm -rf "$STRATA_ROOT/cache"/*; strata gc >/dev/null || fail "gc"
# An image to mount, then unnamed.
printf 'FROM busybox\nRUN echo mounted > /m\n' >"$C/Dockerfile.m"
strata build -q -t mimg -f "$C/Dockerfile.m" "$C" >/dev/null || fail "build mimg"
rm -rf "$STRATA_ROOT/cache"/*

mkdir -p "$WORK/mnt"
strata mount mimg "$WORK/mnt" || fail "mount"
on_exit "'$STRATA' umount '$WORK/mnt' 2>/dev/null"
strata rmi mimg >/dev/null 2>&1 || echo "rmi of a mounted image refused: its name keeps it"

printf 'FROM busybox\nRUN echo start > /a && sleep 6 && echo end >> /a\nRUN cat /a\n' >"$C/Dockerfile.slow"
strata build -q --no-cache -t slow -f "$C/Dockerfile.slow" "$C" >"$WORK/build.out" 2>&1 & b=$!
strata run --rm --scratch disk busybox sh -c \
  'dd if=/dev/urandom of=/data bs=1M count=8 2>/dev/null; md5sum /data > /sum; sleep 6; md5sum -c /sum' \
  >"$WORK/run.out" 2>&1 & r=$!
python3 -c '
import sys, time
with open(sys.argv[1], "rb") as f:
    while True:
        b = f.read(1 << 20)
        if not b: break
        sys.stdout.buffer.write(b); sys.stdout.buffer.flush(); time.sleep(0.1)
' "$WORK/big.tar" | strata load -i - >"$WORK/load.out" 2>&1 & l=$!

rounds=0
while kill -0 $b 2>/dev/null || kill -0 $r 2>/dev/null || kill -0 $l 2>/dev/null; do
  find "$STRATA_ROOT/tmp" -mindepth 1 -maxdepth 1 -exec touch -h -d '3 hours ago' {} + 2>/dev/null
  strata gc >/dev/null 2>>"$WORK/gc.err" || fail "gc: $(cat "$WORK/gc.err")"
  rounds=$((rounds + 1))
  [ -e "$WORK/mnt/m" ] || fail "a mounted image's files went away under gc"
  sleep 0.2
done
wait $b || fail "build during gc: $(cat "$WORK/build.out")"
wait $r || fail "run --scratch disk during gc: $(cat "$WORK/run.out")"
wait $l || fail "load during gc: $(cat "$WORK/load.out")"
[ "$rounds" -ge 5 ] || fail "gc ran only $rounds times during the work"
echo "gc ran $rounds times"
assert_eq "$(strata cat slow /a | tr '\n' ' ')" "start end " "the slow build's layer"
assert_contains "$(cat "$WORK/run.out")" "/data: OK" "the run's scratch file"
strata run --rm big md5sum -c /big.md5 >/dev/null || fail "the loaded image's content"
assert_eq "$(cat "$WORK/mnt/m")" "mounted" "mounted file"
strata umount "$WORK/mnt" || fail "umount"
strata verify || fail "verify after gc during work"
# Unused, unlocked leftovers older than an hour do go.
mkdir "$STRATA_ROOT/tmp/leftover-x"; touch -d '3 hours ago' "$STRATA_ROOT/tmp/leftover-x"
strata gc >/dev/null || fail "gc"
[ -e "$STRATA_ROOT/tmp/leftover-x" ] && fail "an old unlocked tmp/ leftover stayed"
# After umount the unnamed image is gc's to take.
strata gc >/dev/null || fail "gc"
strata verify >/dev/null || fail "verify"
echo ok
