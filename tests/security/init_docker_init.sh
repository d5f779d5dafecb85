#!/usr/bin/env bash
# issue 13 item 8 / issue 18: `--init` must not make PID 1 a fork of the
# host's strata binary (/proc/1/exe would lead to a host file, runc's
# CVE-2019-5736). PID 1 is docker-init (Debian's tini) from a sealed memfd:
# /proc/1/exe is not strata, cannot be opened for writing, and cmdline shows
# /sbin/docker-init -- CMD as in Docker. Zombies are reaped, signals reach
# the command, exit statuses are the command's (128+N for signal N).
. "$(dirname "$0")/lib.sh"
[ -x /usr/bin/tini-static ] || skip "needs /usr/bin/tini-static (apt-get install tini)"
strata bootstrap busybox >/dev/null || fail "bootstrap"

host_id=$(stat -L -c %d:%i "$STRATA")
host_sum=$(sha256sum <"$STRATA" | cut -d' ' -f1)
out=$(strata run --rm --init busybox sh -c '
  echo "exe=$(readlink /proc/1/exe)"
  echo "id=$(stat -L -c %d:%i /proc/1/exe)"
  echo "sum=$(sha256sum </proc/1/exe | cut -d" " -f1)"
  echo "cmdline=$(tr "\0" " " </proc/1/cmdline)"
  if (echo x >>/proc/1/exe) 2>/dev/null; then echo "write=opened"; else echo "write=refused"; fi
  if (printf x | dd of=/proc/1/exe conv=notrunc 2>/dev/null); then echo "dd=opened"; else echo "dd=refused"; fi
') || fail "run --init: $out"
echo "$out"
get() { sed -n "s/^$1=//p" <<<"$out"; }
[ "$(get id)" != "$host_id" ] || fail "/proc/1/exe is the host's strata binary (same inode)"
[ "$(get sum)" != "$host_sum" ] || fail "/proc/1/exe has the host strata binary's content"
[ "$(get sum)" = "$(sha256sum </usr/bin/tini-static | cut -d' ' -f1)" ] || fail "PID 1 is not tini"
[[ "$(get exe)" == /memfd:docker-init* ]] || fail "/proc/1/exe should be the sealed memfd, is $(get exe)"
assert_eq "$(get write)" "refused" "opening /proc/1/exe for writing"
assert_eq "$(get dd)" "refused" "writing /proc/1/exe in place"
[[ "$(get cmdline)" == "/sbin/docker-init -- sh -c "* ]] || fail "cmdline: $(get cmdline)"
# The host's tini is untouched.
[ "$(sha256sum </usr/bin/tini-static | cut -d' ' -f1)" = "$(get sum)" ] || fail "host tini changed"

# The command is PID 2 under PID 1; orphans are reaped.
assert_eq "$(strata run --rm --init busybox sh -c 'echo $$ $PPID')" "2 1" "command is PID 2"
z=$(strata run --rm --init busybox sh -c '(sleep 0.2 & exec true) ; sleep 1; ps -o stat | grep -c "^Z"')
assert_eq "$z" "0" "zombies are reaped"
# Exit statuses and signals.
strata run --rm --init busybox sh -c 'exit 7'; assert_eq "$?" "7" "exit status"
strata run --rm --init busybox sh -c 'kill -TERM $$; sleep 5'; assert_eq "$?" "143" "death by SIGTERM"
strata run --rm --init busybox nosuchcommand 2>"$WORK/err"; assert_eq "$?" "127" "missing command"
assert_contains "$(cat "$WORK/err")" "nosuchcommand" "missing command named"
# A signal to PID 1 reaches the command through docker-init.
out=$(strata run --rm --init busybox sh -c 'trap "echo got-usr1; exit 9" USR1; kill -USR1 1; sleep 3; echo missed')
rc=$?
assert_eq "$rc" "9" "SIGUSR1 to PID 1 forwarded to the command"
assert_eq "$out" "got-usr1" "the command saw SIGUSR1"

# Without tini, --init fails clearly instead of falling back.
if command -v unshare >/dev/null; then
  msg=$(unshare -m bash -c 'mount -t tmpfs none /usr/bin && exec "$0" run --init busybox true' "$STRATA" 2>&1)
  rc=$?
  assert_eq "$rc" "125" "--init without tini"
  assert_contains "$msg" "tini" "--init without tini names it"
fi
echo ok
