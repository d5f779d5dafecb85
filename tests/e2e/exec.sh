#!/usr/bin/env bash
# strata exec and top into a detached service, and HEALTHCHECK (issue #15):
# Docker's flags, exit codes and messages.
. "$(dirname "$0")/lib.sh"
need python3

strata bootstrap busybox >/dev/null || fail "bootstrap"
# A service writing a counter to a file every 0.2 s.
id=$(strata run -d --name svc busybox sh -c 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done') ||
  fail "run -d"
on_exit "strata rm -f svc >/dev/null 2>&1"
sleep 0.5

# exec reads a file the service writes, inside the container's PID namespace.
n=$(strata exec svc cat /tmp/count) || fail "exec cat"
[ "$n" -ge 1 ] || fail "the service's counter: '$n'"
assert_eq "$(strata exec svc sh -c 'cat /proc/1/cmdline | tr "\0" " "')" "sh -c i=0; while true; do i=\$((i+1)); echo \$i > /tmp/count; sleep 0.2; done " "PID 1 is the service"
ppid=$(strata exec svc sh -c 'echo $PPID')
assert_eq "$ppid" "0" "the exec'd process's parent is outside the container"
# By id prefix too.
assert_eq "$(strata exec "${id:0:6}" hostname)" "${id:0:12}" "exec by id prefix; the container's hostname"

# -u, -w, -e, --env-file
assert_eq "$(strata exec -u nobody svc id -u)" "65534" "exec -u nobody"
assert_eq "$(strata exec -u 1000:1000 svc id -u)" "1000" "exec -u uid:gid"
assert_eq "$(strata exec -w /etc svc pwd)" "/etc" "exec -w"
assert_eq "$(strata exec -e FOO=bar svc sh -c 'echo $FOO')" "bar" "exec -e"
printf 'FROMFILE=yes\n' > "$WORK/env"
assert_eq "$(strata exec --env-file "$WORK/env" svc sh -c 'echo $FROMFILE')" "yes" "exec --env-file"
assert_contains "$(strata exec svc env)" "PATH=/usr/local/sbin:" "the default PATH"

# -i passes stdin; without it stdin is empty.
assert_eq "$(echo piped | strata exec -i svc cat)" "piped" "exec -i"
assert_eq "$(echo piped | strata exec svc cat)" "" "no stdin without -i"

# Exit codes as Docker's exec.
strata exec svc sh -c 'exit 7'; assert_eq "$?" "7" "exit status"
strata exec svc sh -c 'kill -9 $$'; assert_eq "$?" "137" "death by SIGKILL"
expect_fail 'executable file not found in $PATH' strata exec svc nosuchcommand
strata exec svc nosuchcommand 2>/dev/null; assert_eq "$?" "127" "not found"
strata exec svc /etc/passwd 2>/dev/null; assert_eq "$?" "126" "not executable"
strata exec -w /no/such/dir svc true 2>/dev/null; assert_eq "$?" "126" "missing working directory"
expect_fail "No such container: nosuch" strata exec nosuch true
strata exec nosuch true 2>/dev/null; assert_eq "$?" "1" "no such container"
expect_fail '"strata exec" requires at least 2 arguments' strata exec svc

# exec -d: the process runs on after the CLI returned and the container's
# init (sh, which reaps its children) adopts and reaps it.
strata exec -d svc sh -c 'echo $PPID > /tmp/detached; sleep 1' || fail "exec -d"
sleep 0.3
assert_eq "$(strata exec svc cat /tmp/detached)" "1" "the detached process's parent is PID 1"
sleep 1.5
# PID 1's own `sleep 0.2` is a zombie for the moment between its exit and
# the loop's wait, which a loaded machine can catch: an unreaped detached
# process stays one in every look.
for _ in $(seq 1 10); do
  zombies=$(strata exec svc sh -c 'grep -l "^State:.*Z" /proc/[0-9]*/status 2>/dev/null | wc -l')
  [ "$zombies" = 0 ] && break
  sleep 0.3
done
assert_eq "$zombies" "0" "the detached process was reaped"

# exec -t: a terminal from the container's devpts.
out=$(python3 - "$STRATA" <<'PY'
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "exec", "-it", "svc", "sh", "-c", "tty; echo cols=$(stty size)"])
data = b""
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
_, status = os.waitpid(pid, 0)
print(data.decode(errors="replace").replace("\r", ""))
print("status=%d" % os.waitstatus_to_exitcode(status))
PY
)
assert_contains "$out" "/dev/pts/" "exec -t gives a pty"
assert_contains "$out" "status=0" "exec -t exit status"
assert_eq "$(strata exec -t svc sh -c 'test -t 0 && echo tty' | tr -d '\r')" "tty" "exec -t without a terminal on the caller's side"

# top: the service's processes (sh and its sleep), in Docker's columns.
out=$(strata top svc) || fail "top"
assert_contains "$(echo "$out" | head -1)" "UID" "top header"
assert_contains "$(echo "$out" | head -1)" "CMD" "top header"
assert_contains "$out" "sh -c i=0; while true" "top lists the service"
[ "$(echo "$out" | grep -c 'strata')" = 0 ] || fail "top lists host processes: $out"
out=$(strata top svc -o pid,comm) || fail "top -o pid,comm"
assert_eq "$(echo "$out" | head -1 | tr -s ' ')" "PID COMMAND" "top with ps options"
expect_fail 'Error response from daemon: specifying "ppid=PID" is not allowed' strata top svc -o ppid=PID

# A stopped container cannot be exec'd into.
strata stop -t 1 svc >/dev/null || fail "stop"
expect_fail "Error response from daemon: Container $id is not running" strata exec svc true
expect_fail "Error response from daemon: Container $id is not running" strata top svc

# HEALTHCHECK: healthy while /tmp/ok exists, unhealthy once it is gone.
strata run -d --name hc --health-cmd 'test -e /tmp/ok' --health-interval 200ms --health-retries 2 \
  busybox sh -c 'touch /tmp/ok; sleep 600' >/dev/null || fail "run -d with --health-cmd"
on_exit "strata rm -f hc >/dev/null 2>&1"
status() { strata inspect --format '{{.State.Health.Status}}' hc; }
for _ in $(seq 50); do [ "$(status)" = healthy ] && break; sleep 0.1; done
assert_eq "$(status)" "healthy" "the health check passes"
assert_contains "$(strata ps --filter name=hc)" "(healthy)" "ps shows the health"
strata exec hc rm /tmp/ok
for _ in $(seq 50); do [ "$(status)" = unhealthy ] && break; sleep 0.1; done
assert_eq "$(status)" "unhealthy" "two failures in a row"
assert_contains "$(strata ps --filter name=hc)" "(unhealthy)" "ps shows unhealthy"
streak=$(strata inspect --format '{{.State.Health.FailingStreak}}' hc)
[ "$streak" -ge 2 ] || fail "FailingStreak: $streak"

# The image's HEALTHCHECK applies; --no-healthcheck turns it off.
mkdir -p "$WORK/ctx"
printf 'FROM busybox\nHEALTHCHECK --interval=200ms --retries=1 CMD test -e /etc/passwd\n' > "$WORK/ctx/Dockerfile"
strata build -q -t hcimg "$WORK/ctx" >/dev/null || fail "build with HEALTHCHECK"
strata run -d --name hc2 hcimg sleep 600 >/dev/null || fail "run -d hcimg"
on_exit "strata rm -f hc2 >/dev/null 2>&1"
for _ in $(seq 50); do [ "$(strata inspect --format '{{.State.Health.Status}}' hc2)" = healthy ] && break; sleep 0.1; done
assert_eq "$(strata inspect --format '{{.State.Health.Status}}' hc2)" "healthy" "the image's health check"
assert_eq "$(strata inspect --format '{{json .Config.Healthcheck.Test}}' hc2)" '["CMD-SHELL","test -e /etc/passwd"]' "Config.Healthcheck (shell form)"
strata run -d --name hc3 --no-healthcheck hcimg sleep 600 >/dev/null || fail "run -d --no-healthcheck"
on_exit "strata rm -f hc3 >/dev/null 2>&1"
assert_eq "$(strata inspect --format '{{json .Config.Healthcheck.Test}}' hc3)" '["NONE"]' "--no-healthcheck"
sleep 0.5
assert_eq "$(strata ps --filter name=hc3 --format '{{.Status}}' | sed 's/Up [^(]*//')" "" "no health without a check"
expect_fail "conflicts with --health-* options" strata run -d --no-healthcheck --health-cmd true busybox true
exit 0
