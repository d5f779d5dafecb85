#!/usr/bin/env bash
# strata run: --cap-add, --cap-drop and --privileged as Docker.
. "$(dirname "$0")/../e2e/lib.sh"
SECPROBE=${SECPROBE:?SECPROBE must point at the secprobe helper}

strata bootstrap busybox >/dev/null || fail "bootstrap"
P=(-v "$SECPROBE:/secprobe:ro")
capeff() { strata run --rm "$@" busybox sh -c "grep '^CapEff:' /proc/self/status | cut -f2"; }
# Docker's default set: chown dac_override fowner fsetid kill setgid setuid
# setpcap net_bind_service net_raw sys_chroot mknod audit_write setfcap.
assert_eq "$(capeff)" "00000000a80425fb" "default capabilities"

# --cap-drop ALL: chown needs CAP_CHOWN, even for root.
assert_eq "$(strata run --rm "${P[@]}" --cap-drop ALL busybox sh -c 'touch /f; /secprobe chown /f')" "chown: EPERM" "--cap-drop ALL"
assert_eq "$(capeff --cap-drop ALL)" "0000000000000000" "--cap-drop ALL leaves nothing"
assert_eq "$(strata run --rm "${P[@]}" --cap-drop chown busybox sh -c 'touch /f; /secprobe chown /f')" "chown: EPERM" "--cap-drop chown"
assert_eq "$(strata run --rm "${P[@]}" busybox sh -c 'touch /f; /secprobe chown /f')" "chown: ok" "chown with the default set"
assert_eq "$(capeff --cap-drop ALL --cap-add CAP_CHOWN)" "0000000000000001" "--cap-drop ALL --cap-add CAP_CHOWN"
assert_eq "$(capeff --cap-drop Net_Raw)" "00000000a80405fb" "names in any case, without CAP_"

# --cap-add SYS_ADMIN: mount works, and Docker's profile lets the calls that
# need it (mount, unshare) through.
strata run --rm busybox sh -c 'mkdir /m && mount -t tmpfs t /m' 2>/dev/null && fail "mount without CAP_SYS_ADMIN must fail"
strata run --rm --cap-add SYS_ADMIN busybox sh -c 'mkdir /m && mount -t tmpfs t /m' || fail "--cap-add SYS_ADMIN should allow mount"
assert_eq "$(capeff --cap-add sys_admin)" "00000000a82425fb" "--cap-add sys_admin"

# --privileged: every capability of this kernel that strata itself holds
# (its bounding set: all of them on an ordinary host).
bnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
assert_eq "$(capeff --privileged)" "$bnd" "--privileged has every capability"
assert_eq "$(capeff --cap-add ALL --cap-drop CHOWN)" "$(printf '%016x' $(( 0x$bnd & ~1 )))" "--cap-add ALL --cap-drop CHOWN"

expect_fail 'unknown capability: "CAP_NOPE"' strata run --rm --cap-add nope busybox true
expect_fail 'unknown capability: "CAP_NOPE"' strata run --rm --cap-drop CAP_NOPE busybox true
exit 0
