#!/usr/bin/env bash
# The attack of issue 13 item 4: a RUN step plants a setuid-root binary and a
# world-writable device node in its cache mount; another local user
# (nobody) then runs the binary / writes to the node through the store.
# Both must fail: the store is closed to other users (0710/0700 as Docker's
# data root), and the cache mount is nosuid,nodev inside the step too.
. "$(dirname "$0")/lib.sh"
need setpriv util-linux
[ -x /usr/bin/tini-static ] || skip "needs /usr/bin/tini-static (apt-get install tini)"
strata bootstrap busybox >/dev/null || fail "bootstrap"

mkdir -p "$WORK/ctx"
cp /usr/bin/tini-static "$WORK/ctx/payload"
cat >"$WORK/ctx/Dockerfile" <<'DF'
FROM busybox
RUN --mount=type=cache,target=/cache --mount=type=bind,source=payload,target=/p \
    cp /p /cache/s && chmod 4755 /cache/s && mknod /cache/n c 1 3 && chmod 666 /cache/n && \
    echo planted
DF
strata build -q -t planted "$WORK/ctx" >/dev/null || fail "build"

# The store and its directories are closed to other users.
assert_eq "$(stat -c %a "$STRATA_ROOT")" "710" "store root mode"
for d in blobs snapshots cache cache-mounts tmp; do
  assert_eq "$(stat -c %a "$STRATA_ROOT/$d")" "700" "store $d mode"
done
as_nobody ls "$STRATA_ROOT/cache-mounts" >/dev/null 2>&1 && fail "nobody lists cache-mounts/"

s=$(ls "$STRATA_ROOT"/cache-mounts/*/s) || fail "the payload is not in the cache"
n=$(ls "$STRATA_ROOT"/cache-mounts/*/n) || fail "the device node is not in the cache"
[ -u "$s" ] || fail "payload lost its setuid bit (the test would prove nothing)"
assert_eq "$("$s" -s -- /bin/grep -c Uid /proc/self/status)" "1" "the payload runs for root"
euid=$(euid_via "$s")
[ "$euid" = "0" ] && fail "nobody got euid 0 from a setuid binary a RUN step planted in a cache mount"
as_nobody sh -c "echo x > '$n'" 2>/dev/null && fail "nobody wrote to a device node a RUN step planted"

# Inside a step the cache mount is nosuid,nodev: the node does not open.
cat >"$WORK/ctx/Dockerfile" <<'DF'
FROM busybox
RUN --mount=type=cache,target=/cache grep " /cache " /proc/self/mountinfo && \
    if echo x > /cache/n; then echo NODE-$((40+2))-OPENED; fi
DF
out=$(strata build --no-cache --progress plain "$WORK/ctx" 2>&1) || fail "second build: $out"
[[ "$out" == *"NODE-42-OPENED"* ]] && fail "a device node in a cache mount opened inside the step"
line=$(grep -m1 "cache-mounts/[0-9a-f]* /cache " <<<"$out") || fail "no /cache mount in the step: $out"
assert_contains "$line" "nosuid" "cache mount flags"
assert_contains "$line" "nodev" "cache mount flags"
echo ok
