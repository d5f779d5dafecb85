#!/usr/bin/env bash
# strata push converts zstd layers to gzip by default (Docker 20.10 and other
# older clients cannot pull zstd), saying so, and keeps the image ID (the
# config and diff IDs are those of the same uncompressed layers); --compression
# zstd pushes them as they are, zstd:chunked TOC annotations included (a pull
# gets them back, and the image is read lazily through its TOC). Against
# Debian's docker-registry on 127.0.0.1.
# Needs root and overlayfs (overlay probe), busybox-static, docker-registry.
. "$(dirname "$0")/lib.sh"
need python3
need docker-registry
[ -x /bin/busybox ] || skip "needs /bin/busybox (apt-get install busybox-static)"
. "$(dirname "$0")/../support/docker_registry.sh"
registry_start "$WORK/registry" || fail "docker-registry did not start"
on_exit "registry_stop $WORK/registry"

strata bootstrap busybox >/dev/null || fail "bootstrap"
C=$WORK/ctx
mkdir -p "$C"
printf 'FROM busybox\nRUN echo zstd > /z\n' >"$C/Dockerfile"
strata build -q --compression zstd -t zimg "$C" >/dev/null 2>"$WORK/err" || { cat "$WORK/err"; fail "build"; }
id=$(strata inspect --format json zimg | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])')
# layer media types of a manifest at the registry
remote_types() {
  python3 - "$REG" "$1" "$2" <<'PY'
import json, sys, urllib.request
reg, repo, tag = sys.argv[1:]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
req = urllib.request.Request("http://%s/v2/%s/manifests/%s" % (reg, repo, tag), headers={
    "Accept": "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"})
m = json.load(opener.open(req))
print(" ".join(sorted(set(l["mediaType"] for l in m["layers"]))))
PY
}

strata push zimg "$REG/t/zimg:gzip" >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "push"; }
assert_contains "$(cat "$WORK/out")" "converted from zstd to gzip" "push says it converts"
assert_eq "$(remote_types t/zimg gzip)" "application/vnd.oci.image.layer.v1.tar+gzip" "the registry gets gzip layers"
strata push --compression zstd zimg "$REG/t/zimg:zstd" >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "push --compression zstd"; }
assert_contains "$(remote_types t/zimg zstd)" "tar+zstd" "--compression zstd keeps zstd"
# The zstd:chunked layers keep containers/storage's TOC annotations through
# push and pull, and the pulled image is read lazily through its TOC.
chunked_ann() {
  strata inspect --format json "$1" | python3 -c 'import json,sys
for l in json.load(sys.stdin)[0]["Manifest"]["layers"]:
    a = l.get("annotations", {})
    k = "io.github.containers.zstd-chunked.manifest-"
    if k + "checksum" in a: print(l["digest"], a[k + "checksum"], a[k + "position"])'
}
ann=$(chunked_ann zimg)
[ -n "$ann" ] || fail "the zstd build wrote no zstd:chunked layer"
ZS=$WORK/zstore
STRATA_ROOT=$ZS strata pull "$REG/t/zimg:zstd" >/dev/null || fail "pull the zstd image"
assert_eq "$(STRATA_ROOT=$ZS chunked_ann "$REG/t/zimg:zstd")" "$ann" "the TOC annotations survive push and pull"
if [ -c /dev/fuse ]; then
  STRATA_ROOT=$ZS strata run --rm --lazy "$REG/t/zimg:zstd" cat /z >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "lazy run of the pulled zstd image"; }
  assert_eq "$(cat "$WORK/out")" "zstd" "the pulled zstd:chunked image read lazily"
  for d in $(echo "$ann" | cut -d' ' -f1); do
    [ ! -e "$ZS/lazy/${d#sha256:}.idx" ] || fail "layer $d was indexed by a pass, not from its TOC"
  done
fi

OTHER=$WORK/other
STRATA_ROOT=$OTHER strata pull "$REG/t/zimg:gzip" >/dev/null || fail "pull the converted image"
id2=$(STRATA_ROOT=$OTHER strata inspect --format json "$REG/t/zimg:gzip" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])')
assert_eq "$id2" "$id" "the converted image has the same image ID"
rm -rf "$WORK/u"
STRATA_ROOT=$OTHER strata unpack "$REG/t/zimg:gzip" "$WORK/u" >/dev/null || fail "unpack the pulled image"
assert_eq "$(cat "$WORK/u/z")" "zstd" "the converted layers hold the same files"
# A damaged blob in the store is not trusted when its digest is pulled again:
# it is fetched again and replaced by the verified bytes.
layer=$(STRATA_ROOT=$OTHER strata inspect --format '{{index .RootFS.Layers 0}}' "$REG/t/zimg:gzip" 2>/dev/null)
blob=$(find "$OTHER/blobs/sha256" -type f -size +100c | while read -r b; do
  if gzip -t "$b" 2>/dev/null; then echo "$b"; fi; done | head -1)
[ -n "$blob" ] || fail "no layer blob found in the pulled store ($layer)"
digest=$(basename "$blob")
chmod u+w "$blob"
printf 'garbage' | dd of="$blob" bs=1 seek=0 conv=notrunc status=none
STRATA_ROOT=$OTHER strata verify >/dev/null 2>&1 && fail "verify must see the damaged blob"
STRATA_ROOT=$OTHER strata pull "$REG/t/zimg:gzip" >/dev/null || fail "pull again over a damaged blob"
assert_eq "$(sha256sum "$blob" | cut -d' ' -f1)" "$digest" "the damaged blob was fetched again"
STRATA_ROOT=$OTHER strata verify >/dev/null || fail "verify after the pull replaced the damaged blob"
echo "build_push: all checks passed"
