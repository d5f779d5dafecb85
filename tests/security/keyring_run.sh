#!/usr/bin/env bash
# strata run: the container cannot read the caller's session keyring; each
# container gets a session keyring of its own (as runc).
. "$(dirname "$0")/../e2e/lib.sh"
SECPROBE=${SECPROBE:?SECPROBE must point at the secprobe helper}
need keyctl keyutils

strata bootstrap busybox >/dev/null || fail "bootstrap"
# A session keyring of the test's own, holding a secret.
export STRATA SECPROBE
out=$(keyctl session strata-keyring-test bash -c '
  keyctl add user strata-test-secret s3cret @s >/dev/null || exit 3
  # The helper itself can read it outside a container (the attack is real).
  "$SECPROBE" read-key strata-test-secret
  "$STRATA" run --rm -v "$SECPROBE:/secprobe:ro" busybox /secprobe read-key strata-test-secret
  "$STRATA" run --rm -v "$SECPROBE:/secprobe:ro" --security-opt seccomp=unconfined busybox /secprobe read-key strata-test-secret
  "$STRATA" run --rm -v "$SECPROBE:/secprobe:ro" --privileged busybox /secprobe read-key strata-test-secret
') || fail "keyctl session: $out"
want="read-key: s3cret
request_key: EPERM
request_key: ENOKEY
request_key: ENOKEY"
assert_eq "$out" "$want" "the caller's key must stay unreadable (seccomp, then a fresh keyring)"
exit 0
