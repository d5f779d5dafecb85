#!/usr/bin/env bash
# Hostile image archives and layouts: every refusal names the layer, entry or
# tag, and leaves the store byte for byte as it was (no new blob, the same
# index.json, `strata verify` clean). A damaged blob is replaced, never
# reused, when its digest arrives again.
. "$(dirname "$0")/lib.sh"
need python3

mkdir -p "$WORK/root/etc"
echo hello >"$WORK/root/etc/hello"
tar -C "$WORK/root" -cf "$WORK/rootfs.tar" etc
strata import "$WORK/rootfs.tar" -t base:1 >/dev/null || fail "import"
strata save base:1 -o "$WORK/good.tar" || fail "save"
# An OCI archive keeps the store's blobs as they are (docker-archive layers are
# written uncompressed, so under other digests).
strata save base:1 --format oci -o "$WORK/good.oci.tar" || fail "save --format oci"

python3 - "$WORK" <<'PY'
import hashlib, io, json, os, sys, tarfile
work = sys.argv[1]

def layer(entries, fmt=tarfile.PAX_FORMAT):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=fmt) as t:
        for info, data in entries:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return b.getvalue()

def f(name, data=b"x", pax=None):
    i = tarfile.TarInfo(name); i.size = len(data); i.mtime = 1700000000
    if pax: i.pax_headers = pax
    return (i, data)

def sha(b): return hashlib.sha256(b).hexdigest()

# A classic docker-archive (manifest.json, no index.json) of images given as
# (tags, [layer bytes], [diff ids or None]).
def archive(name, images):
    with tarfile.open(f"{work}/{name}", "w") as t:
        def add(n, data):
            i = tarfile.TarInfo(n); i.size = len(data); t.addfile(i, io.BytesIO(data))
        manifest = []
        for tags, layers, diff_ids in images:
            cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                              "rootfs": {"type": "layers",
                                         "diff_ids": diff_ids or ["sha256:" + sha(l) for l in layers]}}).encode()
            names = []
            for l in layers:
                add(f"{sha(l)}/layer.tar", l); names.append(f"{sha(l)}/layer.tar")
            add(f"{sha(cfg)}.json", cfg)
            manifest.append({"Config": f"{sha(cfg)}.json", "RepoTags": tags, "Layers": names})
        add("manifest.json", json.dumps(manifest).encode())

good = layer([f("a", b"1")])
archive("diffid.tar", [(["x:1"], [good], ["sha256:" + "0" * 64])])
bad = bytearray(layer([f("first", b"1"), f("second", b"2")], tarfile.USTAR_FORMAT))
bad[1024] ^= 1  # the second header's name, after its checksum
archive("checksum.tar", [(["x:1"], [bytes(bad)], None)])
archive("uid.tar", [(["x:1"], [layer([f("owned", pax={"uid": "4294967296"})])], None)])
archive("sparse.tar", [(["x:1"], [layer([f("big", b"y" * 512, pax={
    "GNU.sparse.size": str(1 << 40), "GNU.sparse.numblocks": "1",
    "GNU.sparse.offset": "0", "GNU.sparse.numbytes": "512"})])], None)])
archive("badtag.tar", [(["Not A Tag"], [good], None)])
archive("notag.tar", [(["example.com/app"], [good], None)])
archive("duptag.tar", [(["x:1"], [good], None), (["x:1"], [layer([f("b")])], None)])
archive("selinux.tar", [(["labelled:1"], [layer([f("labelled", b"x\n", pax={
    "SCHILY.xattr.security.selinux": "system_u:object_r:bin_t:s0",
    "SCHILY.xattr.user.note": "kept",
    "SCHILY.xattr.trusted.overlay.opaque": "y"})])], None)])
PY

state() {
  (cd "$STRATA_ROOT" && find blobs -type f | LC_ALL=C sort && sha256sum index.json)
}
before=$(state)
check_refused() {
  local want=$1 input=$2
  expect_fail "$want" strata load -i "$input"
  assert_eq "$(state)" "$before" "$input: a refused load leaves the store as it was"
  [ -z "$(ls -A "$STRATA_ROOT/tmp" 2>/dev/null)" ] || fail "$input: leftovers in tmp/"
}
check_refused "differs from the config's rootfs.diff_ids[0]" "$WORK/diffid.tar"
check_refused 'tar header at offset 1024 ("recond"), after entry "first": bad header checksum' "$WORK/checksum.tar"
check_refused 'is not an id from 0 to 4294967294' "$WORK/uid.tar"
check_refused 'tar entry "big": a file of 1099511627776 bytes (sparse), over the limit' "$WORK/sparse.tar"
check_refused 'RepoTags: invalid tag "Not A Tag"' "$WORK/badtag.tar"
check_refused 'RepoTags: invalid tag "example.com/app"' "$WORK/notag.tar"
check_refused 'RepoTags: "x:1" names more than one image' "$WORK/duptag.tar"
if command -v lz4 >/dev/null; then
  lz4 -q -c "$WORK/good.tar" >"$WORK/good.tar.lz4"
  check_refused 'compressed with lz4; image archives are read plain or compressed with gzip, bzip2, xz or zstd' "$WORK/good.tar.lz4"
fi
# An OCI layout whose blobs directory is a symlink to elsewhere.
strata save base:1 --format oci-dir -o "$WORK/layout" || fail "save oci-dir"
mv "$WORK/layout/blobs" "$WORK/elsewhere"
ln -s "$WORK/elsewhere" "$WORK/layout/blobs"
check_refused '"blobs" is a symlink' "$WORK/layout"
strata verify >/dev/null || fail "verify after the refusals"

# Faithful where Docker is lenient: a later layer's path through a symlink of a
# lower layer (Debian's var/run -> /run, a relative lib -> usr/lib, a link
# that climbs above the root) is followed inside the root, as Docker applies
# layers; unpack, export and verify agree.
python3 - "$WORK" <<'PY'
import hashlib, io, json, sys, tarfile
work = sys.argv[1]
def layer(entries):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in entries:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return b.getvalue()
def d(name, mode=0o755):
    i = tarfile.TarInfo(name); i.type = tarfile.DIRTYPE; i.mode = mode; i.mtime = 1700000000; return (i, None)
def f(name, data):
    i = tarfile.TarInfo(name); i.size = len(data); i.mtime = 1700000000; i.mode = 0o644; return (i, data)
def l(name, target):
    i = tarfile.TarInfo(name); i.type = tarfile.SYMTYPE; i.linkname = target; i.mtime = 1700000000; return (i, None)
sha = lambda b: hashlib.sha256(b).hexdigest()
l1 = layer([d("var"), l("var/run", "/run"), d("run", 0o710), d("usr"), d("usr/lib"), l("lib", "usr/lib"), l("up", "../../..")])
l2 = layer([f("var/run/x", b"through var/run\n"), f("lib/y", b"through lib\n"), f("up/z", b"through up\n")])
with tarfile.open(f"{work}/lowerlink.tar", "w") as t:
    def add(n, data):
        i = tarfile.TarInfo(n); i.size = len(data); t.addfile(i, io.BytesIO(data))
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(l1), "sha256:" + sha(l2)]}}).encode()
    add(sha(l1) + "/layer.tar", l1); add(sha(l2) + "/layer.tar", l2); add(sha(cfg) + ".json", cfg)
    add("manifest.json", json.dumps([{"Config": sha(cfg) + ".json", "RepoTags": ["lowerlink:1"],
                                      "Layers": [sha(l1) + "/layer.tar", sha(l2) + "/layer.tar"]}]).encode())
PY
strata load -i "$WORK/lowerlink.tar" >/dev/null || fail "load of an image writing through a lower layer's symlinks"
strata unpack lowerlink:1 "$WORK/lowerlink" || fail "unpack through a lower layer's symlinks"
assert_eq "$(cat "$WORK/lowerlink/run/x")" "through var/run" "var/run/x lands at /run/x"
assert_eq "$(cat "$WORK/lowerlink/usr/lib/y")" "through lib" "lib/y lands at /usr/lib/y"
assert_eq "$(cat "$WORK/lowerlink/z")" "through up" "up/z stops at the root"
[ -L "$WORK/lowerlink/var/run" ] || fail "var/run stays a symlink"
assert_eq "$(stat -c %a "$WORK/lowerlink/run")" "710" "/run keeps its mode"
strata export lowerlink:1 | tar -t | grep -qx 'run/x' || fail "export has run/x"
strata verify >/dev/null || fail "verify after the unpack through lower symlinks"

# security.* xattrs a layer carries are applied as Docker's applier applies
# them (moby's createTarFile sets every SCHILY.xattr record; checked against
# dockerd's overlay2: security.selinux and user.* stay on the file). The
# overlayfs xattrs are dropped: dockerd keeps them (trusted.overlay.opaque
# stays on its file), strata does not let a layer speak for overlayfs.
# strata's own layer writer leaves security.selinux out, as Docker's does.
if [ "$(id -u)" = 0 ]; then
  strata load -i "$WORK/selinux.tar" >/dev/null || fail "load of a layer with security.selinux"
  strata unpack labelled:1 "$WORK/labelled" || fail "unpack of the labelled image"
  snap=$WORK/labelled/labelled
  xattrs() { python3 -c 'import os,sys; p=sys.argv[1]; print(" ".join(sorted(n+"="+os.getxattr(p,n,follow_symlinks=False).decode() for n in os.listxattr(p,follow_symlinks=False))))' "$1"; }
  assert_eq "$(xattrs "$snap")" "security.selinux=system_u:object_r:bin_t:s0 user.note=kept" \
    "security.selinux and user.* applied, trusted.overlay.* dropped"
  if docker info >/dev/null 2>&1; then
    docker rmi -f labelled:1 >/dev/null 2>&1
    docker load -i "$WORK/selinux.tar" >/dev/null || fail "docker load of the labelled image"
    upper=$(docker inspect -f '{{.GraphDriver.Data.UpperDir}}' labelled:1)
    assert_eq "$(xattrs "$snap")" "$(xattrs "$upper/labelled" | tr ' ' '\n' | grep -v '^trusted\.' | paste -sd' ')" \
      "the same xattrs as dockerd's overlay2 (overlayfs's own aside)"
    docker rmi -f labelled:1 >/dev/null 2>&1
  fi
  strata verify >/dev/null || fail "verify after the labelled layer"
fi

# The sparse layer loads when the bound is raised.
STRATA_MAX_FILE_SIZE=$((1 << 41)) strata load -i "$WORK/sparse.tar" >/dev/null ||
  fail "--max-file-size / STRATA_MAX_FILE_SIZE raises the bound"

# A damaged blob is replaced by the verified bytes when its digest arrives again.
layer=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["layers"][0]["digest"].split(":")[1])' \
  "$STRATA_ROOT/blobs/sha256/$(python3 -c 'import json,sys; print([m for m in json.load(open(sys.argv[1]))["manifests"] if m.get("annotations",{}).get("org.opencontainers.image.ref.name","").endswith("base:1")][0]["digest"].split(":")[1])' "$STRATA_ROOT/index.json")")
blob=$STRATA_ROOT/blobs/sha256/$layer
chmod u+w "$blob"
printf 'garbage' | dd of="$blob" bs=1 seek=0 conv=notrunc status=none
strata verify >/dev/null 2>&1 && fail "verify must see the damaged blob"
strata load -i "$WORK/good.oci.tar" >/dev/null || fail "load of the good archive again"
[ "$(sha256sum "$blob" | cut -d' ' -f1)" = "$layer" ] || fail "the damaged blob was reused"
strata verify >/dev/null || fail "verify after the load replaced the damaged blob"
echo ok
