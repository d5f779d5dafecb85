#!/usr/bin/env bash
# strata run: config applied, exit codes, writes thrown away, nothing left behind.
. "$(dirname "$0")/lib.sh"

strata bootstrap busybox >/dev/null || fail "bootstrap"
assert_eq "$(strata run --rm busybox echo hello)" "hello" "echo"
assert_eq "$(strata run --rm busybox sh -c 'echo $$')" "1" "the command is PID 1"
strata run --rm busybox sh -c 'exit 7'; assert_eq "$?" "7" "exit status"
# As PID 1 a command ignores signals it does not handle (as in Docker); under
# --init it is an ordinary process, and its death by SIGTERM is 128+15.
strata run --rm busybox sh -c 'kill -TERM $$; echo survived' | grep -q survived || fail "PID 1 ignores unhandled SIGTERM"
strata run --rm --init busybox sh -c 'kill -TERM $$; sleep 5' ; rc=$?
assert_eq "$rc" "143" "death by SIGTERM is 128+15"
expect_fail 'nosuchcommand' strata run --rm busybox nosuchcommand
strata run --rm busybox nosuchcommand 2>/dev/null; assert_eq "$?" "127" "not found is 127"
strata run --rm busybox /etc/passwd 2>/dev/null; assert_eq "$?" "126" "not executable is 126"
assert_eq "$(strata run --rm -w /tmp/new busybox pwd)" "/tmp/new" "-w creates the working directory"
assert_eq "$(strata run --rm -e FOO=bar busybox sh -c 'echo $FOO')" "bar" "-e"
assert_eq "$(strata run --rm -u nobody busybox id -u)" "65534" "-u name from the image's /etc/passwd"
assert_eq "$(strata run --rm --hostname box busybox hostname)" "box" "--hostname"
assert_eq "$(echo piped | strata run --rm -i busybox cat)" "piped" "-i passes stdin"
assert_eq "$(strata run --rm --network none busybox ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')" "lo " "network none has only lo"
# As root the default is Docker's bridge (scripts/test.sh runs the suite in a network namespace of its own).
assert_eq "$(strata run --rm busybox ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | tr '\n' ' ')" "lo eth0 " "the default network is bridge"
mkdir -p "$WORK/vol"; echo data > "$WORK/vol/f"
assert_eq "$(strata run --rm -v "$WORK/vol:/mnt:ro" busybox cat /mnt/f)" "data" "-v bind mount"
strata run --rm -v "$WORK/vol:/mnt:ro" busybox sh -c 'echo x > /mnt/g' 2>/dev/null && fail "read-only volume must refuse writes"
assert_eq "$(strata run --rm --entrypoint echo busybox a b)" "a b" "--entrypoint"

# Writes never reach the image; nothing stays mounted or in tmp/.
strata run --rm busybox sh -c 'echo changed > /etc/passwd; rm /bin/ls' || fail "writes in the container"
strata run --rm busybox grep -q root /etc/passwd || fail "the image's /etc/passwd must be unchanged"
strata run --rm busybox test -e /bin/ls || fail "the image's /bin/ls must be unchanged"
# The throwaway upper is never synced to disk (overlay "volatile").
strata run --rm busybox head -1 /proc/self/mountinfo | grep -q 'overlay.*volatile' || fail "the container's root should be a volatile overlay"
grep -q "$STRATA_ROOT" /proc/self/mountinfo && fail "a mount was left behind"
[ -z "$(ls "$STRATA_ROOT/tmp")" ] || fail "tmp/ should be empty after runs: $(ls "$STRATA_ROOT/tmp")"

# The writable layer is in memory by default: a tmpfs that only strata's own
# mount namespace sees (the store's tmp/ stays empty on disk while a
# container runs); --scratch disk puts it in a directory of tmp/.
"$STRATA" run --rm busybox sh -c 'echo x > /f; sleep 2' & pid=$!
sleep 1
[ -z "$(ls "$STRATA_ROOT/tmp")" ] || fail "a memory scratch should not show in tmp/: $(ls "$STRATA_ROOT/tmp")"
wait $pid || fail "run with the memory scratch"
"$STRATA" run --rm --scratch disk busybox sh -c 'echo x > /f; sleep 2' & pid=$!
sleep 1
ls "$STRATA_ROOT/tmp" | grep -q '^run-' || fail "--scratch disk should use a directory in tmp/"
wait $pid || fail "run with --scratch disk"
assert_eq "$(strata run --rm --scratch disk busybox sh -c 'echo d > /f; cat /f')" "d" "--scratch disk writes"
[ -z "$(ls "$STRATA_ROOT/tmp")" ] || fail "tmp/ should be empty after a --scratch disk run"
strata run --rm --scratch nowhere busybox true 2>/dev/null && fail "--scratch accepts only memory or disk"
# SIGKILL to strata: the container dies with it (PDEATHSIG), and the memory
# scratch and the mounts vanish with its mount namespace.
"$STRATA" run --rm busybox sleep 101 & pid=$!
sleep 1
kill -KILL $pid
wait $pid 2>/dev/null
sleep 0.5
pgrep -f 'sleep 101' >/dev/null && fail "the container's process survived strata's SIGKILL"
grep -q "$STRATA_ROOT" /proc/self/mountinfo && fail "a mount was left behind after SIGKILL"
[ -z "$(ls "$STRATA_ROOT/tmp")" ] || fail "tmp/ should be empty after strata was killed"

# Ctrl-C (SIGINT to strata) stops the container and leaves nothing.
"$STRATA" run --rm busybox sleep 100 & pid=$!
sleep 1
kill -INT $pid
wait $pid; rc=$?
[ "$rc" -ne 0 ] || fail "an interrupted run should not exit 0"
pgrep -f 'sleep 100' >/dev/null && fail "the container's process survived"
[ -z "$(ls "$STRATA_ROOT/tmp")" ] || fail "tmp/ should be empty after an interrupted run"
echo ok
