#!/usr/bin/env bash
# strata build: RUN steps run under Docker's default seccomp profile.
. "$(dirname "$0")/../e2e/lib.sh"
SECPROBE=${SECPROBE:?SECPROBE must point at the secprobe helper}

strata bootstrap busybox >/dev/null || fail "bootstrap"
C=$WORK/ctx
mkdir -p "$C"
cp "$SECPROBE" "$C/secprobe"
cat > "$C/Dockerfile" <<'DF'
FROM busybox
COPY secprobe /secprobe
RUN /secprobe userns > /r; /secprobe clone-userns >> /r; /secprobe add-key >> /r; \
    /secprobe kexec >> /r; /secprobe clone3 >> /r; (unshare -U true 2>/dev/null && echo "unshare -U: ok" || echo "unshare -U: refused") >> /r; \
    grep '^Seccomp:' /proc/self/status | tr -d '\t ' >> /r
DF
strata build --progress plain -t sec/build "$C" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; fail "build"; }
got=$(strata run --rm sec/build cat /r)
want="userns: EPERM
clone-userns: EPERM
add-key: EPERM
kexec: EPERM
clone3: ENOSYS
unshare -U: refused
Seccomp:2"
assert_eq "$got" "$want" "RUN step under the default profile"
exit 0
