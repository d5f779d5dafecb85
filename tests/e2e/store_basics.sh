#!/usr/bin/env bash
# bootstrap, images, inspect, tag, rmi, save/load round trips, verify, gc.
. "$(dirname "$0")/lib.sh"

strata bootstrap busybox >/dev/null || fail "bootstrap"
strata images | grep -qE '^busybox +latest ' || fail "images should list busybox latest"
id=$(strata images -q)
[ ${#id} -eq 12 ] || fail "image ID should be 12 hex digits, got '$id'"
json=$(strata inspect --format json busybox)
assert_contains "$json" '"Cmd": [' "inspect shows Cmd"
assert_contains "$json" '"sh"' "Cmd is sh"
full_id=$(strata inspect --format json busybox | sed -n 's/.*"Id": "\(sha256:[0-9a-f]*\)".*/\1/p')
[ -n "$full_id" ] || fail "inspect has an Id"

# The store is an OCI layout whose index names the image.
grep -q '"org.opencontainers.image.ref.name":"docker.io/library/busybox:latest"' "$STRATA_ROOT/index.json" ||
  fail "index.json should name docker.io/library/busybox:latest"

# Resolution by ID prefix and tagging.
strata tag "${id:0:8}" localhost:5000/tools/bb:v1 || fail "tag by ID prefix"
strata images | grep -q 'localhost:5000/tools/bb' || fail "tagged name listed"
expect_fail "no such image: nothere" strata inspect nothere
expect_fail "invalid reference format" strata tag busybox 'Bad:Name'

# save -> load into a fresh store keeps the image ID and the manifest digest.
for fmt in docker oci; do
  strata save busybox --format $fmt -o "$WORK/bb-$fmt.tar" || fail "save $fmt"
  STRATA_ROOT=$WORK/store-$fmt strata load -i "$WORK/bb-$fmt.tar" | grep -q 'Loaded image: busybox:latest' ||
    fail "load $fmt should report the name"
  got=$(STRATA_ROOT=$WORK/store-$fmt strata inspect --format json busybox | sed -n 's/.*"Id": "\(sha256:[0-9a-f]*\)".*/\1/p')
  assert_eq "$got" "$full_id" "image ID after a $fmt round trip"
  STRATA_ROOT=$WORK/store-$fmt strata verify >/dev/null || fail "verify after load ($fmt)"
done
strata save busybox --format oci-dir -o "$WORK/layout" || fail "save oci-dir"
STRATA_ROOT=$WORK/store-dir strata load -i "$WORK/layout" -t copied:1 | grep -q 'copied:1' || fail "load layout -t"

# rmi: the name goes, the other name keeps the image.
strata rmi localhost:5000/tools/bb:v1 | grep -q 'Untagged: localhost:5000/tools/bb:v1' || fail "rmi prints Untagged"
strata inspect busybox >/dev/null || fail "busybox must survive removing its other name"

# verify finds a corrupted blob and names it.
strata verify >/dev/null || fail "verify on a clean store"
layer=$(strata inspect --format json busybox | grep -o 'sha256:[0-9a-f]\{64\}' | sed -n 3p)
blob=$STRATA_ROOT/blobs/sha256/${layer#sha256:}
cp "$blob" "$WORK/blob.bak"
chmod u+w "$blob"; printf 'x' >> "$blob"
out=$(strata verify 2>&1) && fail "verify should fail on a corrupted blob"
assert_contains "$out" "$layer" "verify names the corrupted blob"
cp "$WORK/blob.bak" "$blob"
strata verify >/dev/null || fail "verify after repair"

# gc keeps what images use and removes the rest.
strata rmi busybox >/dev/null || fail "rmi busybox"
out=$(strata gc) || fail "gc"
assert_contains "$out" "removed" "gc reports"
[ -z "$(ls "$STRATA_ROOT/blobs/sha256")" ] || fail "gc should leave no blob once no image is left"
echo ok
