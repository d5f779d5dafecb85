#!/usr/bin/env bash
# strata build: a RUN step cannot read the caller's session keyring.
. "$(dirname "$0")/../e2e/lib.sh"
SECPROBE=${SECPROBE:?SECPROBE must point at the secprobe helper}
need keyctl keyutils

strata bootstrap busybox >/dev/null || fail "bootstrap"
C=$WORK/ctx
mkdir -p "$C"
cp "$SECPROBE" "$C/secprobe"
cat > "$C/Dockerfile" <<'DF'
FROM busybox
COPY secprobe /secprobe
RUN /secprobe read-key strata-test-secret > /r
DF
export STRATA C WORK
keyctl session strata-keyring-test bash -c '
  keyctl add user strata-test-secret s3cret @s >/dev/null || exit 3
  "$STRATA" build --progress plain -t sec/key "$C" >"$WORK/build.log" 2>&1
' || { cat "$WORK/build.log" >&2; fail "build"; }
assert_eq "$(strata run --rm sec/key cat /r)" "request_key: EPERM" "RUN step reading the caller's key"
exit 0
