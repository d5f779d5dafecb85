#!/usr/bin/env bash
# zstd:chunked layers and COPY reuse: a build with --compression zstd writes
# zstd:chunked layers (a valid zstd stream of the plain tar, with
# containers/storage's TOC annotations); a rebuild after one context file
# changed hard-links every unchanged file, small and big, from the previous
# snapshot (same inode) and reuses their compressed frames verbatim, making
# the same layer, byte for byte, as a --no-cache build of the same context;
# the image's files are right through `strata run` and `strata mount`; a
# container, a writable mount or a later build writing to a linked file
# leaves both snapshots unchanged; verify and gc stay correct;
# podman (when installed) reads the layers. Needs root and overlayfs (overlay
# probe), busybox-static, python3 and zstd.
. "$(dirname "$0")/lib.sh"
need python3
need zstd
[ -x /bin/busybox ] || skip "needs /bin/busybox (apt-get install busybox-static)"
strata bootstrap busybox >/dev/null || fail "bootstrap busybox"
# Whole-second times clamped: two builds of one context make one layer.
export SOURCE_DATE_EPOCH=1700000000

C=$WORK/ctx
mkdir -p "$C/small"
for i in $(seq 1 40); do echo "small file $i" >"$C/small/f$i.txt"; done
head -c 300000 /dev/urandom >"$C/big1.bin"
head -c 2500000 /dev/urandom >"$C/big2.bin"
cat >"$C/Dockerfile" <<'DF'
FROM busybox:latest
COPY . /data/
RUN find /data -type f | wc -l > /count
DF
# Files changed within the last 2 s are "racy" (builder/context_index.hpp):
# their digests are not remembered, so they are always copied, never linked.
sleep 3
sum1=$(sha256sum <"$C/big1.bin" | cut -d' ' -f1)
sum2=$(sha256sum <"$C/big2.bin" | cut -d' ' -f1)

build() { strata build --progress plain --compression zstd "$@" >"$WORK/last.log" 2>&1 || { cat "$WORK/last.log" >&2; fail "build $*"; }; }
manifest() { strata inspect --format json "$1" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)[0]["Manifest"]))'; }
# The COPY layer (the second of three): digest, then its annotations.
copy_layer() { manifest "$1" | python3 -c 'import json,sys; l=json.load(sys.stdin)["layers"][1]; print(l["digest"], l["mediaType"], l.get("annotations",{}).get("io.github.containers.zstd-chunked.manifest-checksum","-"), l.get("annotations",{}).get("io.github.containers.zstd-chunked.manifest-position","-"))'; }
diff_id() { strata inspect --format json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Config"]["rootfs"]["diff_ids"][1])'; }
blob() { echo "$STRATA_ROOT/blobs/sha256/${1#sha256:}"; }

# The compressed bytes of a file's content in a zstd:chunked blob, from its
# TOC (found through the footer): hex sha256 of the concatenated frames.
cat >"$WORK/frames.py" <<'PY'
import hashlib, json, struct, subprocess, sys
path, name = sys.argv[1], sys.argv[2]
b = open(path, "rb").read()
foot = b[-64:]
off, clen, ulen, typ = struct.unpack("<4Q", foot[:32])
assert foot[56:] == b"GNUlInUx" and typ == 1, "no zstd:chunked footer"
toc = json.loads(subprocess.run(["zstd", "-dcq"], input=b[off:off + clen], capture_output=True, check=True).stdout)
h = hashlib.sha256()
entries = [e for e in toc["entries"] if e["name"] == name]
assert entries, "no entry " + name
# reg entry, then its chunks: each chunk ends where the next one starts.
offs = [e["offset"] for e in entries] + [entries[0]["endOffset"]]
for a, z in zip(offs, offs[1:]):
    h.update(b[a:z])
print(h.hexdigest(), hashlib.sha256(b[off:off + clen]).hexdigest(), off, clen, ulen)
PY

# ------------------------------------------------------------ a chunked layer
build -t chunk/a "$C"
read -r la mta cka posa <<<"$(copy_layer chunk/a)"
assert_eq "$mta" "application/vnd.oci.image.layer.v1.tar+zstd" "media type"
[ "$cka" != - ] && [ "$posa" != - ] || fail "the COPY layer has no zstd:chunked annotations"
out=$(python3 "$WORK/frames.py" "$(blob "$la")" data/big2.bin) || fail "read the TOC of $la"
read -r _ tocsum tocoff toclen tocraw <<<"$out"
assert_eq "sha256:$tocsum" "$cka" "the manifest-checksum annotation is the TOC's sha256"
assert_eq "$posa" "$tocoff:$toclen:$tocraw:1" "the manifest-position annotation"
# A valid zstd stream whose bytes are the layer's tar (its diff ID).
got=$(zstd -dcq <"$(blob "$la")" | sha256sum | cut -d' ' -f1)
assert_eq "sha256:$got" "$(diff_id chunk/a)" "zstd -d gives the tar of the diff ID"
zstd -dcq <"$(blob "$la")" | tar -t >"$WORK/list" || fail "the decoded layer is not a tar"
grep -qx "data/big2.bin" "$WORK/list" || fail "the tar lists data/big2.bin"
# Byte for byte the plain writer's tar: `layer create --upper --compression
# none` over the step's snapshot (its upper directory, adopted).
snap_a=$(ls -d "$STRATA_ROOT"/snapshots/*/fs/data/big1.bin | head -1)
[ -n "$snap_a" ] || fail "no snapshot holds data/big1.bin"
strata layer create --upper --compression none "${snap_a%/data/big1.bin}" -o "$WORK/plain.tar" >/dev/null || fail "layer create"
zstd -dcq <"$(blob "$la")" >"$WORK/chunked.tar"
cmp -s "$WORK/plain.tar" "$WORK/chunked.tar" || fail "zstd -d of the chunked layer differs from the plain writer's tar"

# ---------------------------------------------- rebuild after one file changed
echo "changed" >>"$C/small/f7.txt"
build -t chunk/b "$C"
# 43 files (40 small, 2 big, the Dockerfile), one changed: 42 linked.
assert_contains "$(cat "$WORK/last.log")" "42 unchanged files linked from the previous build" "COPY links every unchanged file"
assert_contains "$(cat "$WORK/last.log")" "of unchanged files reused from layer $la" "the packer reuses frames"
read -r lb _ _ _ <<<"$(copy_layer chunk/b)"
[ "$lb" != "$la" ] || fail "the COPY layer did not change"
for f in big1.bin big2.bin; do
  fa=$(python3 "$WORK/frames.py" "$(blob "$la")" "data/$f" | cut -d' ' -f1)
  fb=$(python3 "$WORK/frames.py" "$(blob "$lb")" "data/$f" | cut -d' ' -f1)
  assert_eq "$fb" "$fa" "the compressed frames of unchanged $f are the old ones"
done
got=$(zstd -dcq <"$(blob "$lb")" | sha256sum | cut -d' ' -f1)
assert_eq "sha256:$got" "$(diff_id chunk/b)" "the rebuilt layer decodes to its diff ID"
# Same inode in both snapshots.
mapfile -t copies < <(ls -d "$STRATA_ROOT"/snapshots/*/fs/data/big2.bin)
assert_eq "${#copies[@]}" 2 "two snapshots hold data/big2.bin"
assert_eq "$(stat -c %i "${copies[0]}")" "$(stat -c %i "${copies[1]}")" "big2.bin is hard-linked between the snapshots"
mapfile -t smalls < <(ls -d "$STRATA_ROOT"/snapshots/*/fs/data/small/f7.txt)
[ "$(stat -c %i "${smalls[0]}")" != "$(stat -c %i "${smalls[1]}")" ] || fail "the changed file must not be shared"
mapfile -t small3 < <(ls -d "$STRATA_ROOT"/snapshots/*/fs/data/small/f3.txt)
assert_eq "$(stat -c %i "${small3[0]}")" "$(stat -c %i "${small3[1]}")" "the small unchanged f3.txt is hard-linked between the snapshots"
# The directories the links went into keep the copy's times: a --no-cache
# build of the same context makes the same layer (digest and diff ID).
build --no-cache -t chunk/cold "$C"
read -r lcold _ _ _ <<<"$(copy_layer chunk/cold)"
assert_eq "$(diff_id chunk/cold)" "$(diff_id chunk/b)" "the rebuilt COPY layer's diff ID is a cold build's"
assert_eq "$lcold" "$lb" "the rebuilt COPY layer is a cold build's, byte for byte"
snaps_b=$(ls -d "$STRATA_ROOT"/snapshots/*/fs/data/small | wc -l)
assert_eq "$snaps_b" 2 "the cold build found the rebuilt snapshot (same chain)"
dump_dirs() { (cd "$1" && find data -mindepth 1 -type d -printf '%p %m %u:%g %T@\n' | sort); }
for s in "$STRATA_ROOT"/snapshots/*/fs; do [ -f "$s/data/small/f7.txt" ] && [ "$(cat "$s/data/small/f7.txt")" = "$(cat "$C/small/f7.txt")" ] && snap_b=$s; done
assert_eq "$(dump_dirs "$snap_b")" "$(mkdir -p "$WORK/fresh" && cp -a "$C/." "$WORK/fresh/data" && cd "$WORK/fresh" && find data -mindepth 1 -type d -printf '%p %m %u:%g %T@\n' | sort)" "the rebuilt snapshot's directories have the context's modes and times"
# The layer has no hard-link entry for the shared inode.
if zstd -dcq <"$(blob "$lb")" | tar -tv | grep -q "^h"; then fail "a tar hard link in the rebuilt layer"; fi

# ---------------------------------------------------- the image's files, run and mount
assert_eq "$(strata run --rm chunk/b sha256sum /data/big2.bin | cut -d' ' -f1)" "$sum2" "run reads big2.bin"
assert_eq "$(strata run --rm chunk/b cat /data/small/f7.txt)" "$(cat "$C/small/f7.txt")" "run reads the changed file"
M=$WORK/mnt; mkdir -p "$M"
strata mount chunk/b "$M" >/dev/null || fail "mount chunk/b"
on_exit "strata umount '$M' >/dev/null 2>&1"
assert_eq "$(sha256sum <"$M/data/big1.bin" | cut -d' ' -f1)" "$sum1" "mount shows big1.bin"
strata umount "$M" >/dev/null || fail "umount"

# A container writing to a linked file gets its own copy.
f3sum=$(sha256sum <"$C/small/f3.txt" | cut -d' ' -f1)
strata run --rm chunk/b sh -c 'echo scribble >> /data/big2.bin; echo scribble >> /data/big1.bin; echo scribble >> /data/small/f3.txt' || fail "run a writer"
for f in "${copies[@]}"; do
  assert_eq "$(sha256sum <"$f" | cut -d' ' -f1)" "$sum2" "the snapshot's $f is unchanged after a container wrote to it"
done
check_f3() {
  for f in "${small3[@]}"; do
    assert_eq "$(sha256sum <"$f" | cut -d' ' -f1)" "$f3sum" "the snapshot's $f is unchanged after $1"
  done
}
check_f3 "a container wrote to it"
# A writable mount, then a later build (RUN appends, COPY replaces).
strata mount --writable chunk/b "$M" >/dev/null || fail "mount --writable chunk/b"
echo scribble >>"$M/data/small/f3.txt" || fail "write through the writable mount"
strata umount "$M" >/dev/null || fail "umount the writable mount"
check_f3 "a writable mount wrote to it"
C2=$WORK/ctx2; mkdir -p "$C2"; echo other >"$C2/f3.txt"
cat >"$C2/Dockerfile" <<'DF'
FROM chunk/b
RUN echo scribble >> /data/small/f3.txt && echo scribble >> /data/big2.bin
COPY f3.txt /data/small/f3.txt
DF
build -t chunk/later "$C2"
assert_eq "$(strata run --rm chunk/later cat /data/small/f3.txt)" "other" "the later build's COPY replaced f3.txt"
check_f3 "a later build wrote to it"
for f in "${copies[@]}"; do
  assert_eq "$(sha256sum <"$f" | cut -d' ' -f1)" "$sum2" "the snapshot's $f is unchanged after a later build wrote to it"
done
strata rmi chunk/later chunk/cold >/dev/null || fail "rmi chunk/later chunk/cold"
assert_eq "$(strata run --rm chunk/a sha256sum /data/big2.bin | cut -d' ' -f1)" "$sum2" "the other image's file is unchanged"

# ------------------------------------------------------------ verify and gc
strata verify >"$WORK/verify" 2>&1 || { cat "$WORK/verify"; fail "verify with shared inodes"; }
strata rmi chunk/a >/dev/null || fail "rmi chunk/a"
strata gc >/dev/null || fail "gc"
assert_eq "$(strata run --rm chunk/b sha256sum /data/big2.bin | cut -d' ' -f1)" "$sum2" "chunk/b after chunk/a is gone"
strata verify >"$WORK/verify" 2>&1 || { cat "$WORK/verify"; fail "verify after gc"; }

# ------------------------------------------ a file given an extended attribute
# Same content and mtime, a new user.* xattr (its ctime moves): the COPY's
# content hash covers the xattr, so the file is copied with it, not linked.
if python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.note", b"kept")' "$C/small/f3.txt" 2>/dev/null; then
  sleep 3
  build -t chunk/x "$C"
  assert_contains "$(cat "$WORK/last.log")" "42 unchanged files linked from the previous build" "COPY links all but the file given an xattr"
  read -r lx _ _ _ <<<"$(copy_layer chunk/x)"
  got=$(python3 - "$(blob "$lx")" <<'PY'
import json, struct, subprocess, sys
b = open(sys.argv[1], "rb").read()
off, clen = struct.unpack("<2Q", b[-64:-48])
toc = json.loads(subprocess.run(["zstd", "-dcq"], input=b[off:off + clen], capture_output=True, check=True).stdout)
print([e.get("xattrs", {}) for e in toc["entries"] if e["name"] == "data/small/f3.txt"])
PY
)
  assert_eq "$got" "[{'user.note': 'a2VwdA=='}]" "the layer gives f3.txt its xattr"
  assert_eq "$(strata run --rm chunk/x cat /data/small/f3.txt)" "$(cat "$C/small/f3.txt")" "run reads f3.txt"
  strata rmi chunk/x >/dev/null || fail "rmi chunk/x"
else
  echo "no user xattrs on $C: the xattr part is left out"
fi

# ------------------------------------------------------------ a foreign reader
if command -v podman >/dev/null 2>&1; then
  strata save --format oci-dir -o "$WORK/layout" chunk/b >/dev/null || fail "save oci-dir"
  P="podman --root $WORK/podman/root --runroot $WORK/podman/run --storage-driver vfs"
  # podman names an oci: image after its path, which must be lowercase.
  L=/tmp/strata-chunked-layout-$$; ln -sfn "$WORK/layout" "$L"; on_exit "rm -f '$L'"
  $P pull -q "oci:$L:chunk/b:latest" >"$WORK/podman.id" 2>"$WORK/podman.err" || { cat "$WORK/podman.err"; fail "podman pulls the zstd:chunked image"; }
  mnt=$($P image mount "$(cat "$WORK/podman.id")") || fail "podman image mount"
  assert_eq "$(sha256sum <"$mnt/data/big2.bin" | cut -d' ' -f1)" "$sum2" "podman reads big2.bin"
  assert_eq "$(cat "$mnt/data/small/f7.txt")" "$(cat "$C/small/f7.txt")" "podman reads the changed file"
  $P image unmount "$(cat "$WORK/podman.id")" >/dev/null 2>&1
  $P rmi -a -f >/dev/null 2>&1
else
  echo "podman not installed: the foreign-reader part is left out"
fi
echo PASS
