#!/usr/bin/env bash
# docker builder prune and docker system prune on the store: dangling build
# cache records go (and the layers only they held), records of images stay,
# -a takes them all with the steps' remembered inputs; until= and
# --keep-storage narrow it; the question as docker asks it; the store
# verifies afterwards. system prune takes stopped containers, unused
# networks, dangling images and dangling build cache in docker's order.
. "$(dirname "$0")/lib.sh"

cleanup() {
  for id in $("$STRATA" ps -aq --no-trunc 2>/dev/null); do "$STRATA" rm -f "$id" >/dev/null 2>&1; done
  "$STRATA" network rm prune-net >/dev/null 2>&1
}
on_exit cleanup

strata bootstrap busybox >/dev/null || fail "bootstrap"
C=$WORK/ctx
mkdir -p "$C"
printf 'FROM busybox\nRUN head -c 2000000 /dev/urandom > /big\nRUN echo kept > /x\n' >"$C/Dockerfile"
printf 'FROM busybox\nRUN head -c 3000000 /dev/urandom > /other\n' >"$C/Dockerfile.d"
records() { find "$STRATA_ROOT/cache" -maxdepth 1 -name '*.json' | wc -l; }

id1=$(strata build -q -t keep:1 "$C") || fail "build keep:1"
n_keep=$(records)
[ "$n_keep" -ge 2 ] || fail "the build left its cache records: $n_keep"

# Records of a named image are in use: nothing goes without -a.
out=$(strata builder prune -f) || fail "builder prune: $out"
assert_eq "$out" "Total reclaimed space: 0B" "nothing dangling"
assert_eq "$(records)" "$n_keep" "records of keep:1 kept"

# A build whose result nobody names: its records are dangling.
strata build -q -f "$C/Dockerfile.d" -t tmp:1 "$C" >/dev/null || fail "build tmp:1"
strata rmi tmp:1 >/dev/null || fail "rmi tmp:1"
[ "$(records)" -gt "$n_keep" ] || fail "tmp:1's record is there after rmi"
out=$(echo n | strata builder prune) || fail "builder prune answered n"
assert_contains "$out" "WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] " "docker's question"
[ "$(records)" -gt "$n_keep" ] || fail "answered n, yet records went"
out=$(echo y | strata builder prune) || fail "builder prune: $out"
assert_contains "$out" "Deleted build cache objects:" "the list"
grep -Eq '^[0-9a-f]{64}$' <<<"$out" || fail "record keys listed: $out"
grep -Eq '^Total reclaimed space: 3(\.[0-9]+)?MB$' <<<"$out" || fail "the 3 MB layer is reclaimed: $out"
assert_eq "$(records)" "$n_keep" "only the dangling record went"
strata verify >/dev/null || fail "verify after builder prune"
# keep:1 still builds from its cache: the same image ID.
assert_eq "$(strata build -q -t keep:1 "$C")" "$id1" "keep:1 rebuilt from the cache"

# until= and --keep-storage narrow -a.
out=$(strata builder prune -af --filter until=1h) || fail "until=1h: $out"
assert_eq "$(records)" "$n_keep" "records written now are not older than 1h"
out=$(strata builder prune -af --keep-storage 1g) || fail "keep-storage: $out"
assert_eq "$(records)" "$n_keep" "under 1 GB kept"
expect_fail "Invalid filter 'label'" strata builder prune -af --filter label=a=b
expect_fail "invalid size" strata builder prune -af --keep-storage lots

# -a: every record, and the steps' remembered inputs.
out=$(strata builder prune -af) || fail "builder prune -a: $out"
assert_eq "$(records)" "0" "no record left"
assert_eq "$(find "$STRATA_ROOT/cache/explain" -type f 2>/dev/null | wc -l)" "0" "no remembered inputs left"
assert_eq "$(strata run --rm keep:1 cat /x)" "kept" "the image is untouched"
strata verify >/dev/null || fail "verify after builder prune -a"

# system prune: docker's list, each kind in its section.
strata create --name stopped busybox true >/dev/null || fail "create"
strata network create prune-net >/dev/null || fail "network create"
strata build -q -f "$C/Dockerfile.d" "$C" >/dev/null || fail "build a dangling image"
out=$(echo n | strata system prune) || fail "system prune answered n"
assert_contains "$out" "WARNING! This will remove:
  - all stopped containers
  - all networks not used by at least one container
  - all dangling images
  - all dangling build cache

Are you sure you want to continue? [y/N] " "docker's question"
strata container inspect stopped >/dev/null 2>&1 || fail "answered n, yet the container went"
out=$(strata system prune -f) || fail "system prune: $out"
assert_contains "$out" "Deleted Containers:" "containers"
assert_contains "$out" "Deleted Networks:
prune-net" "networks"
assert_contains "$out" "Deleted Images:" "images"
assert_contains "$out" "Deleted build cache objects:" "build cache"
assert_contains "$out" "Total reclaimed space: " "total"
strata container inspect stopped >/dev/null 2>&1 && fail "system prune left the stopped container"
strata inspect keep:1 >/dev/null || fail "system prune took a named image"
expect_fail 'The "until" filter is not supported with "--volumes"' strata system prune -f --volumes --filter until=1h
strata verify >/dev/null || fail "verify after system prune"
echo "PASS"
