#!/usr/bin/env bash
# A store left open by an earlier strata (0755 directories) is closed when
# root opens it; a new store is created closed.
. "$(dirname "$0")/lib.sh"
need setpriv util-linux
[ "$(id -u)" -eq 0 ] || skip "needs root (a root-owned store)"
strata images >/dev/null || fail "images"
assert_eq "$(stat -c %a "$STRATA_ROOT")" "710" "new store root"
for d in blobs snapshots cache cache-mounts tmp mounts leases; do
  assert_eq "$(stat -c %a "$STRATA_ROOT/$d")" "700" "new store $d"
done
chmod 755 "$STRATA_ROOT" "$STRATA_ROOT"/*/
as_nobody ls "$STRATA_ROOT/snapshots" >/dev/null || fail "the test store should be open now"
strata images >/dev/null || fail "images on the open store"
assert_eq "$(stat -c %a "$STRATA_ROOT")" "710" "store root tightened"
for d in blobs snapshots cache cache-mounts tmp mounts leases; do
  assert_eq "$(stat -c %a "$STRATA_ROOT/$d")" "700" "store $d tightened"
done
as_nobody ls "$STRATA_ROOT/snapshots" >/dev/null 2>&1 && fail "nobody still lists snapshots/"
# A store of another owner is left as its owner set it.
chown -R 65534:65534 "$STRATA_ROOT"; chmod 755 "$STRATA_ROOT"
strata images >/dev/null 2>&1
assert_eq "$(stat -c %a "$STRATA_ROOT")" "755" "another owner's store is not changed"
chown -R 0:0 "$STRATA_ROOT"
echo ok
