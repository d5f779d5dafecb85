#!/usr/bin/env bash
# COPY reuse with the default (gzip) layers, which carry no per-file digests:
# a rebuild after one context file changed hard-links every unchanged file
# from the previous snapshot, the layer writer hashes each linked file as it
# packs it, and the layer is a --no-cache build's byte for byte. A file whose
# bytes changed while its size and mtime stayed (touch -d) is linked, caught
# by that hash, and the step is made again copying every file: the image
# holds the new bytes. A container writing to a linked file leaves both
# snapshots unchanged. Needs root and overlayfs (overlay probe), busybox-static
# and python3.
. "$(dirname "$0")/lib.sh"
need python3
[ -x /bin/busybox ] || skip "needs /bin/busybox (apt-get install busybox-static)"
strata bootstrap busybox >/dev/null || fail "bootstrap busybox"
export SOURCE_DATE_EPOCH=1700000000

C=$WORK/ctx
mkdir -p "$C/small/sub"
for i in $(seq 1 30); do echo "small file $i" >"$C/small/f$i.txt"; done
for i in $(seq 1 5); do echo "deeper $i" >"$C/small/sub/g$i.txt"; done
head -c 200000 /dev/urandom >"$C/big.bin"
cat >"$C/Dockerfile" <<'DF'
FROM busybox:latest
COPY . /data/
RUN find /data -type f | wc -l > /count
DF
# Files changed within the last 2 s are "racy" (builder/context_index.hpp):
# their digests are not remembered, so they are always copied, never linked.
sleep 3

build() { strata build --progress plain "$@" >"$WORK/last.log" 2>&1 || { cat "$WORK/last.log" >&2; fail "build $*"; }; }
copy_layer() { strata inspect --format json "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin)[0]; print(d["Manifest"]["layers"][1]["digest"], d["Manifest"]["layers"][1]["mediaType"], d["Config"]["rootfs"]["diff_ids"][1])'; }
snap_of() { # the snapshot directory holding data/$1 with the context's bytes
  local s
  for s in "$STRATA_ROOT"/snapshots/*/fs; do
    [ -f "$s/data/$1" ] && cmp -s "$s/data/$1" "$C/$1" && { echo "$s"; return; }
  done
}

build -t reuse/a "$C"
# The context's digest memo is on disk when the build returns (written while
# the RUN ran), naming the files it hashed.
memo=$(ls "$STRATA_ROOT"/cache/context/*.digests 2>/dev/null | head -n1)
[ -n "$memo" ] || fail "no digest memo of the context after the build"
grep -q ' small/sub/g2.txt$' "$memo" || fail "the digest memo does not list small/sub/g2.txt: $(head -c 300 "$memo")"
read -r la mta _ <<<"$(copy_layer reuse/a)"
assert_eq "$mta" "application/vnd.oci.image.layer.v1.tar+gzip" "default layers are gzip"
snap_a=$(snap_of small/f3.txt)

# ---------------------------------------------- one file changed
echo "changed" >>"$C/small/f7.txt"
build -t reuse/b "$C"
# 37 files (35 small, big.bin, the Dockerfile), one changed: 36 linked.
assert_contains "$(cat "$WORK/last.log")" "36 unchanged files linked from the previous build" "COPY links every unchanged file"
read -r lb _ db <<<"$(copy_layer reuse/b)"
[ "$lb" != "$la" ] || fail "the COPY layer did not change"
snap_b=$(snap_of small/f7.txt)
[ -n "$snap_b" ] && [ "$snap_b" != "$snap_a" ] || fail "no new snapshot holds the changed f7.txt"
for f in small/f3.txt small/sub/g2.txt big.bin Dockerfile; do
  assert_eq "$(stat -c %i "$snap_b/data/$f")" "$(stat -c %i "$snap_a/data/$f")" "unchanged $f is hard-linked between the snapshots"
done
[ "$(stat -c %i "$snap_b/data/small/f7.txt")" != "$(stat -c %i "$snap_a/data/small/f7.txt")" ] || fail "the changed file must not be shared"
build --no-cache -t reuse/cold "$C"
read -r lc _ dc <<<"$(copy_layer reuse/cold)"
assert_eq "$dc" "$db" "the rebuilt COPY layer's diff ID is a cold build's"
assert_eq "$lc" "$lb" "the rebuilt COPY layer is a cold build's, byte for byte"
assert_eq "$(strata run --rm reuse/b cat /count)" "37" "the RUN step sees every file"

# ---------------------------------------------- same size and mtime, other bytes
# f3.txt keeps its size and mtime: the snapshot's file looks the same and is
# linked; the writer's hash finds other bytes and the step copies again.
cp -p "$C/small/f3.txt" "$WORK/f3.orig"
printf 'SMALL FILE 3\n' >"$C/small/f3.txt"
touch -r "$WORK/f3.orig" "$C/small/f3.txt"
assert_eq "$(stat -c '%s %Y' "$C/small/f3.txt")" "$(stat -c '%s %Y' "$WORK/f3.orig")" "f3.txt keeps its size and mtime"
sleep 3
build -t reuse/c "$C"
assert_contains "$(cat "$WORK/last.log")" "a file of the previous build differs: copying every file" "the packer's hash catches the linked file"
assert_eq "$(strata run --rm reuse/c cat /data/small/f3.txt)" "SMALL FILE 3" "the image holds the new bytes"
read -r lr _ dr <<<"$(copy_layer reuse/c)"
build --no-cache -t reuse/cold2 "$C"
read -r lc2 _ dc2 <<<"$(copy_layer reuse/cold2)"
assert_eq "$dr" "$dc2" "after the retry the layer is a cold build's (diff ID)"
assert_eq "$lr" "$lc2" "after the retry the layer is a cold build's (digest)"

# ---------------------------------------------- writers never reach a linked inode
sum=$(sha256sum <"$C/big.bin" | cut -d' ' -f1)
g2=$(cat "$C/small/sub/g2.txt")
strata run --rm reuse/b sh -c 'echo scribble >> /data/big.bin; echo scribble >> /data/small/sub/g2.txt' || fail "run a writer"
for s in "$snap_a" "$snap_b"; do
  assert_eq "$(sha256sum <"$s/data/big.bin" | cut -d' ' -f1)" "$sum" "$s/data/big.bin is unchanged after a container wrote to it"
  assert_eq "$(cat "$s/data/small/sub/g2.txt")" "$g2" "$s/data/small/sub/g2.txt is unchanged after a container wrote to it"
done
strata verify >"$WORK/verify" 2>&1 || { cat "$WORK/verify"; fail "verify with shared inodes"; }

# ---------------------------------------------- COPY --chown reuses too
# The step's previous result is found by its key without the content, which
# keeps --chown (a result made with other owners lends no files).
cat >"$C/Dockerfile.chown" <<'DF'
FROM busybox:latest
COPY --chown=1000:1000 . /data/
DF
sleep 3
build -f "$C/Dockerfile.chown" -t reuse/o1 "$C"
echo "changed again" >>"$C/small/f9.txt"
sleep 3
build -f "$C/Dockerfile.chown" -t reuse/o2 "$C"
assert_contains "$(cat "$WORK/last.log")" "37 unchanged files linked from the previous build" "COPY --chown links the unchanged files"
read -r lo _ do2 <<<"$(copy_layer reuse/o2)"
build --no-cache -f "$C/Dockerfile.chown" -t reuse/ocold "$C"
read -r loc _ doc <<<"$(copy_layer reuse/ocold)"
assert_eq "$lo" "$loc" "the rebuilt COPY --chown layer is a cold build's, byte for byte"
assert_eq "$(strata run --rm reuse/o2 stat -c %u:%g /data/small/f3.txt)" "1000:1000" "linked files keep the --chown owner"
sed -i 's/--chown=1000:1000/--chown=1001:1001/' "$C/Dockerfile.chown"
build -f "$C/Dockerfile.chown" -t reuse/o3 "$C"
if grep -q "unchanged files linked from the previous build" "$WORK/last.log"; then fail "files linked from a result made with other owners"; fi
assert_eq "$(strata run --rm reuse/o3 stat -c %u:%g /data/small/f3.txt)" "1001:1001" "the other --chown's owner"

# ---------------------------------------------- extended attributes (no TOC)
# A source given a user.* xattr is copied with it, not linked; once the xattr
# is removed again (content and mtime as they were), the previous snapshot's
# file still has it, so it is not linked either: the layer has none.
f3_xattrs() { # the pax xattrs the COPY layer of $1 gives data/small/f3.txt
  read -r l _ _ <<<"$(copy_layer "$1")"
  python3 - "$STRATA_ROOT/blobs/sha256/${l#sha256:}" <<'PY'
import sys, tarfile
t = tarfile.open(sys.argv[1])
m = t.getmember("data/small/f3.txt")
print(sorted(k for k in m.pax_headers if k.startswith("SCHILY.xattr.")))
PY
}
if python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.note", b"kept")' "$C/small/f3.txt" 2>/dev/null; then
  sleep 3
  build -t reuse/x1 "$C"
  assert_eq "$(f3_xattrs reuse/x1)" "['SCHILY.xattr.user.note']" "a file given an xattr is copied with it"
  snap_x1=$(python3 - "$STRATA_ROOT"/snapshots/*/fs <<'PY'
import os, sys
for s in sys.argv[1:]:
    try:
        os.getxattr(s + "/data/small/f3.txt", "user.note")
        print(s)
        break
    except OSError:
        pass
PY
)
  [ -n "$snap_x1" ] || fail "no snapshot holds f3.txt with its xattr"
  python3 -c 'import os, sys; os.removexattr(sys.argv[1], "user.note")' "$C/small/f3.txt"
  sleep 3
  build -t reuse/x2 "$C"
  assert_eq "$(f3_xattrs reuse/x2)" "[]" "the xattr is gone once removed from the source"
  for s in "$STRATA_ROOT"/snapshots/*/fs; do
    [ "$s" = "$snap_x1" ] && continue
    [ "$(stat -c %i "$s/data/small/f3.txt" 2>/dev/null)" = "$(stat -c %i "$snap_x1/data/small/f3.txt")" ] &&
      fail "the file with the removed xattr was linked from $snap_x1"
  done
else
  echo "no user xattrs on $C: the xattr part is left out"
fi
echo PASS
