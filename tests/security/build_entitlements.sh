#!/usr/bin/env bash
# issue 13 item 8: a Dockerfile cannot give itself the host's network or a
# privileged step. RUN --network=host needs `--allow network.host` (or the
# build-wide --network host, as docker build grants it); RUN
# --security=insecure needs `--allow security.insecure`, with BuildKit's
# wording when missing.
. "$(dirname "$0")/lib.sh"
strata bootstrap busybox >/dev/null || fail "bootstrap"
C=$WORK/ctx; mkdir -p "$C"
# The host's interface names (other tests may add and remove links while
# this runs: only names there both before and after the build count).
link_names() { ip -o link 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | sort; }
host_before=$(link_names)

printf 'FROM busybox\nRUN --network=host ip -o link > /links\n' >"$C/Dockerfile.net"
expect_fail "network.host is not allowed" strata build -f "$C/Dockerfile.net" "$C"
expect_fail "--allow network.host" strata build -f "$C/Dockerfile.net" "$C"
strata build -q --allow network.host -t net -f "$C/Dockerfile.net" "$C" >/dev/null || fail "--allow network.host"
stable=$(comm -12 <(echo "$host_before") <(link_names) | grep -vx lo)
step_links=$(strata cat net /links | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | sort)
grep -qx lo <<<"$step_links" || fail "the step's ip -o link was not read: $step_links"
# (A host with only lo cannot tell its network from a new one.)
if [ -n "$stable" ]; then
  missing=$(comm -23 <(echo "$stable") <(echo "$step_links"))
  [ -z "$missing" ] || fail "the step does not have the host's links (missing: $missing; it saw: $step_links)"
fi
strata build -q --no-cache --network host -f "$C/Dockerfile.net" "$C" >/dev/null ||
  fail "the build-wide --network host grants network.host"
# RUN --network=none and default need nothing.
printf 'FROM busybox\nRUN --network=none true\nRUN true\n' >"$C/Dockerfile.none"
strata build -q -f "$C/Dockerfile.none" "$C" >/dev/null || fail "--network=none"

printf 'FROM busybox\nRUN --security=insecure echo privileged > /p\n' >"$C/Dockerfile.insecure"
expect_fail "security.insecure is not allowed" strata build -f "$C/Dockerfile.insecure" "$C"
expect_fail "security.insecure is not allowed" strata build --allow network.host -f "$C/Dockerfile.insecure" "$C"
strata build -q --allow security.insecure -t ins -f "$C/Dockerfile.insecure" "$C" >/dev/null ||
  fail "--allow security.insecure"
assert_eq "$(strata cat ins /p)" "privileged" "the insecure step ran"
# The sandboxed and the insecure step are different steps for the cache.
printf 'FROM busybox\nRUN echo privileged > /p\n' >"$C/Dockerfile.sandbox"
out=$(strata build --progress plain --allow security.insecure -f "$C/Dockerfile.sandbox" "$C" 2>&1) || fail "$out"
[[ "$out" == *CACHED* ]] && fail "a sandboxed RUN reused the insecure step's cache: $out"

expect_fail "invalid entitlement: device" strata build --allow device -f "$C/Dockerfile.none" "$C"
echo ok
