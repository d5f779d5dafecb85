#!/usr/bin/env bash
# strata run: Docker's default seccomp profile confines every container;
# --security-opt seccomp=unconfined|FILE and --privileged change it as in Docker.
. "$(dirname "$0")/../e2e/lib.sh"
SECPROBE=${SECPROBE:?SECPROBE must point at the secprobe helper}

strata bootstrap busybox >/dev/null || fail "bootstrap"
P=(-v "$SECPROBE:/secprobe:ro")
probe() { strata run --rm "${P[@]}" "$@"; }

# The attacks, refused by the default profile.
assert_eq "$(probe busybox /secprobe userns)" "userns: EPERM" "unshare(CLONE_NEWUSER)"
assert_eq "$(probe busybox /secprobe clone-userns)" "clone-userns: EPERM" "clone(CLONE_NEWUSER)"
assert_eq "$(probe busybox /secprobe add-key)" "add-key: EPERM" "add_key"
assert_eq "$(probe busybox /secprobe kexec)" "kexec: EPERM" "kexec_load"
assert_eq "$(probe busybox /secprobe vsock)" "vsock: EPERM" "socket(AF_VSOCK)"
# clone3 is answered ENOSYS (so that glibc falls back to clone), as in Docker.
assert_eq "$(probe busybox /secprobe clone3)" "clone3: ENOSYS" "clone3"
probe busybox unshare -U true 2>/dev/null && fail "unshare -U must fail in a container"
probe busybox grep -q '^Seccomp:[[:space:]]*2' /proc/self/status || fail "the command should run under a seccomp filter"
# Ordinary work is unaffected, under init too.
assert_eq "$(probe busybox sh -c 'mkdir /d && echo yes')" "yes" "mkdir is allowed"
assert_eq "$(probe --init busybox sh -c 'echo a | cat')" "a" "--init forks the command under the filter"
assert_eq "$(probe --security-opt no-new-privileges busybox echo ok)" "ok" "no-new-privileges"
assert_eq "$(probe --security-opt no-new-privileges=true busybox echo ok)" "ok" "no-new-privileges=true"

# unconfined: no filter, the same calls get through to the kernel.
U=(--security-opt seccomp=unconfined)
probe "${U[@]}" busybox grep -q '^Seccomp:[[:space:]]*0' /proc/self/status || fail "unconfined should mean no filter"
assert_eq "$(probe "${U[@]}" busybox /secprobe add-key)" "add-key: ok" "add_key unconfined"
assert_eq "$(probe "${U[@]}" busybox /secprobe clone3)" "clone3: EINVAL" "clone3 unconfined"
if unshare -U true 2>/dev/null; then
  assert_eq "$(probe "${U[@]}" busybox /secprobe userns)" "userns: ok" "unshare(CLONE_NEWUSER) unconfined"
fi
# --privileged: no filter either (as Docker).
probe --privileged busybox grep -q '^Seccomp:[[:space:]]*0' /proc/self/status || fail "--privileged should mean no filter"

# A profile of one's own, in Docker's format: mkdir fails with its errno.
cat > "$WORK/nomkdir.json" <<'JSON'
{
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [
    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
  ]
}
JSON
C=(--security-opt "seccomp=$WORK/nomkdir.json")
assert_eq "$(probe "${C[@]}" busybox /secprobe mkdir /x)" "mkdir: EACCES" "the profile's errno"
probe "${C[@]}" busybox mkdir /x 2>/dev/null && fail "mkdir must fail under the custom profile"
assert_eq "$(probe "${C[@]}" busybox /secprobe add-key)" "add-key: ok" "a custom profile replaces the default"
# The colon separator Docker still accepts.
assert_eq "$(probe --security-opt "seccomp:$WORK/nomkdir.json" busybox /secprobe mkdir /x)" "mkdir: EACCES" "seccomp:FILE"

# Profiles that cannot be used stop the container (125) and name the file.
printf '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [' > "$WORK/broken.json"
out=$(strata run --rm --security-opt "seccomp=$WORK/broken.json" busybox true 2>&1); rc=$?
assert_eq "$rc" "125" "broken profile exit status"
assert_contains "$out" "$WORK/broken.json" "broken profile message"
echo '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"}]}' > "$WORK/badaction.json"
out=$(strata run --rm --security-opt "seccomp=$WORK/badaction.json" busybox true 2>&1); rc=$?
assert_eq "$rc" "125" "bad action exit status"
assert_contains "$out" "SCMP_ACT_BOGUS" "bad action message"
out=$(strata run --rm --security-opt "seccomp=$WORK/missing.json" busybox true 2>&1); rc=$?
assert_eq "$rc" "125" "missing profile exit status"
assert_contains "$out" "opening seccomp profile ($WORK/missing.json) failed" "missing profile message"

# Unknown options: Docker's messages.
expect_fail 'invalid --security-opt 2: "foo=bar"' strata run --rm --security-opt foo=bar busybox true
expect_fail 'invalid --security-opt 1: "foo"' strata run --rm --security-opt foo busybox true
expect_fail 'invalid --security-opt 2: "no-new-privileges=maybe"' strata run --rm --security-opt no-new-privileges=maybe busybox true
exit 0
