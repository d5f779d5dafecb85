#!/usr/bin/env bash
# strata exec: a process exec'd into a running container is confined as the
# container is (capabilities, seccomp, no_new_privs, keyring, mount and PID
# namespaces) and gets no fd of strata's.
. "$(dirname "$0")/../e2e/lib.sh"
SECPROBE=${SECPROBE:?SECPROBE must point at the secprobe helper}
need keyctl keyutils

strata bootstrap busybox >/dev/null || fail "bootstrap"
P=(-v "$SECPROBE:/secprobe:ro")
strata run -d --name box "${P[@]}" busybox sleep 600 >/dev/null || fail "run -d"
on_exit "strata rm -f box >/dev/null 2>&1"
strata run -d --name nocaps --cap-drop ALL "${P[@]}" busybox sleep 600 >/dev/null || fail "run -d --cap-drop ALL"
on_exit "strata rm -f nocaps >/dev/null 2>&1"
field() { strata exec "$1" sh -c "grep '^$2:' /proc/self/status | cut -f2"; }

# Capabilities: the container's set, never strata's own (root's full set).
assert_eq "$(field box CapEff)" "00000000a80425fb" "exec has Docker's default set"
assert_eq "$(field box CapBnd)" "00000000a80425fb" "exec's bounding set"
assert_eq "$(field nocaps CapEff)" "0000000000000000" "exec into a --cap-drop ALL container has none"
assert_eq "$(field nocaps CapBnd)" "0000000000000000" "and cannot regain any (bounding set)"
assert_eq "$(strata exec nocaps sh -c 'touch /f; /secprobe chown /f')" "chown: EPERM" "chown without CAP_CHOWN"
assert_eq "$(field box NoNewPrivs)" "1" "no_new_privs"
# --privileged: every capability for the exec'd process, as Docker's exec.
bnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
assert_eq "$(strata exec --privileged box sh -c "grep '^CapEff:' /proc/self/status | cut -f2")" "$bnd" "exec --privileged"

# Seccomp: the container's filter (Docker's default profile).
assert_eq "$(field box Seccomp)" "2" "exec runs under a seccomp filter"
assert_eq "$(strata exec box /secprobe userns)" "userns: EPERM" "unshare(CLONE_NEWUSER) refused"
assert_eq "$(strata exec box /secprobe add-key)" "add-key: EPERM" "add_key refused"
assert_eq "$(strata exec box /secprobe kexec)" "kexec: EPERM" "kexec_load refused"
strata exec box unshare -U true 2>/dev/null && fail "unshare -U must fail in an exec'd process"

# Mount namespace: the container's, not the host's.
mkdir -p "$WORK/hostdir" && echo secret > "$WORK/hostdir/marker"
strata exec box cat "$WORK/hostdir/marker" 2>/dev/null && fail "the host's files must be invisible"
strata exec box awk '{print $5}' /proc/self/mountinfo | grep -q "$WORK" && fail "the host's mounts must be invisible"
assert_eq "$(strata exec box readlink /proc/self/ns/mnt)" "$(strata exec box readlink /proc/1/ns/mnt)" "the container's mount namespace"
# PID namespace: only the container's processes.
n=$(strata exec box sh -c 'ls -d /proc/[0-9]* | wc -l')
[ "$n" -le 4 ] || fail "exec sees $n processes: the host's PID namespace?"

# No fd of strata's: deliberately inheritable fds in the caller stay out.
exec 7</etc/passwd 8>"$WORK/leak"
fds=$(strata exec box ls /proc/self/fd | tr "\n" " ")
exec 7<&- 8>&-
# 0-2, and 3: the directory ls itself reads; never the caller's 7 and 8.
# (Listed by the exec'd process itself: a shell's listing of its own fds
# caught its pipe to tr now and then.)
for fd in $fds; do
  [ "$fd" -le 3 ] || fail "an fd of strata's reached the exec'd process: $fds"
done
assert_contains "$fds" "0 1 2 " "the standard streams"

# The keyring: a session keyring of its own, the caller's keys unreadable
# (a container without seccomp filter, so that keyctl reaches the kernel).
strata run -d --name unconf --security-opt seccomp=unconfined "${P[@]}" busybox sleep 600 >/dev/null ||
  fail "run -d seccomp=unconfined"
on_exit "strata rm -f unconf >/dev/null 2>&1"
export STRATA SECPROBE
out=$(keyctl session strata-exec-keyring bash -c '
  keyctl add user strata-exec-secret s3cret @s >/dev/null || exit 3
  "$SECPROBE" read-key strata-exec-secret
  "$STRATA" exec unconf /secprobe read-key strata-exec-secret
  "$STRATA" exec box /secprobe read-key strata-exec-secret
') || fail "keyctl session: $out"
want="read-key: s3cret
request_key: ENOKEY
request_key: EPERM"
assert_eq "$out" "$want" "the caller's key must stay unreadable (a fresh keyring; seccomp)"
exit 0
