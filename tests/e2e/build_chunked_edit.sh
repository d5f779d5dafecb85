#!/usr/bin/env bash
# A zstd:chunked rebuild as an edit of the previous layer: after one context
# file changed, the files the COPY linked from the previous snapshot are not
# read by the layer writer (their frames come from the previous layer) and
# the layer is a --no-cache build's, digest and diff ID, whether the changed
# file comes first, in the middle or last in the tar, or is a big file of
# several chunks. The previous snapshot or layer going bad never gives a
# wrong layer: a linked file modified in place (same size and times) in the
# previous snapshot, a damaged frame in the previous blob, a truncated
# previous blob. Needs root and overlayfs (overlay probe), busybox-static,
# python3 and zstd.
. "$(dirname "$0")/lib.sh"
need python3
need zstd
[ -x /bin/busybox ] || skip "needs /bin/busybox (apt-get install busybox-static)"
strata bootstrap busybox >/dev/null || fail "bootstrap busybox"
export SOURCE_DATE_EPOCH=1700000000

C=$WORK/ctx
mkdir -p "$C/a" "$C/m" "$C/z"
for d in a m z; do
  for i in $(seq -w 1 20); do echo "small file $d $i" >"$C/$d/f$i.txt"; done
done
head -c 9000000 /dev/urandom >"$C/big1.bin" # nine chunks, two hash checkpoints
head -c 300000 /dev/urandom >"$C/m/big2.bin"
printf 'Dockerfile\n.dockerignore\n' >"$C/.dockerignore"
cat >"$C/Dockerfile" <<'DF'
FROM busybox:latest
COPY . /data/
RUN cat /data/m/f05.txt > /seen
DF
# 62 files in the COPY: a/ (first in the tar), big1.bin, m/ (middle), z/ (last).
files=62
# Files changed within the last 2 s are "racy" (builder/context_index.hpp):
# always copied, never linked.
sleep 3

build() { strata --log-level debug build --progress plain --compression zstd "$@" >"$WORK/last.log" 2>&1 || { cat "$WORK/last.log" >&2; fail "build $*"; }; }
copy_layer() { strata inspect --format json "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin)[0]; print(d["Manifest"]["layers"][1]["digest"], d["Config"]["rootfs"]["diff_ids"][1])'; }
blob() { echo "$STRATA_ROOT/blobs/sha256/${1#sha256:}"; }
n=0
# rebuild WHAT LINKED NOTREAD RESUMED: a rebuild, then a --no-cache build of
# the same context; both COPY layers must be the same (digest and diff ID).
# LINKED: files the COPY must have linked; NOTREAD: files the writer must
# have taken from the previous layer without reading them ("none": no such
# note; "-" unchecked); RESUMED: yes when both hashes must have gone on from a checkpoint of
# the previous layer (the change comes after one), no when not, - unchecked.
rebuild() {
  local what=$1 linked=$2 notread=$3 resumed=${4:--} lr dr lc dc from
  sleep 3
  n=$((n + 1))
  build -t edit/r$n "$C"
  cp "$WORK/last.log" "$WORK/rebuild$n.log"
  if [ "$linked" != - ]; then
    assert_contains "$(cat "$WORK/last.log")" "$linked unchanged files linked from the previous build" "$what: COPY links"
  fi
  if [ "$notread" != - ] && [ "$notread" != none ]; then
    assert_contains "$(cat "$WORK/last.log")" "($notread linked files not read)" "$what: the writer takes the linked files' frames"
  elif [ "$notread" = none ]; then
    if grep -q "linked files not read" "$WORK/last.log"; then fail "$what: linked files taken from a previous layer that cannot give them"; fi
  fi
  read -r lr dr <<<"$(copy_layer edit/r$n)"
  from=$(sed -n "s/.*layer $lr: .* the blob's hash went on from offset \([0-9]*\) of.*/\1/p" "$WORK/last.log")
  case $resumed in
    yes) [ -n "$from" ] && [ "$from" -gt 0 ] || fail "$what: the blob's hash did not go on from a checkpoint (offset '$from')" ;;
    no) [ -z "$from" ] || [ "$from" = 0 ] || fail "$what: the blob's hash went on from $from, before the change" ;;
  esac
  # The rebuilt layer's blob decodes to its diff ID.
  assert_eq "sha256:$(zstd -dcq <"$(blob "$lr")" | sha256sum | cut -d' ' -f1)" "$dr" "$what: the blob decodes to the diff ID"
  build --no-cache -t edit/c$n "$C"
  read -r lc dc <<<"$(copy_layer edit/c$n)"
  assert_eq "$dr" "$dc" "$what: the rebuilt layer's diff ID is a cold build's"
  assert_eq "$lr" "$lc" "$what: the rebuilt layer is a cold build's, byte for byte"
  last_layer=$lr
}

build -t edit/base "$C"
read -r last_layer _ <<<"$(copy_layer edit/base)"

# ------------------------------------------------ the changed file's place
echo "changed" >>"$C/a/f01.txt"
rebuild "first file changed" $((files - 1)) $((files - 1)) no
echo "changed" >>"$C/m/f10.txt"
rebuild "middle file changed" $((files - 1)) $((files - 1)) yes
echo "changed" >>"$C/z/f20.txt"
rebuild "last file changed" $((files - 1)) $((files - 1)) yes
# A big file of nine chunks changes in its second chunk (same size).
python3 - "$C/big1.bin" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(1500000); b = f.read(1); f.seek(1500000); f.write(bytes([b[0] ^ 0xff]))
PY
rebuild "big file changed" $((files - 1)) $((files - 1)) no
echo "changed" >>"$C/a/f02.txt"
echo "changed" >>"$C/z/f19.txt"
rebuild "two files changed" $((files - 2)) $((files - 2)) no

# ------------------------------------------------ same content, other metadata
# Files whose content is unchanged but whose mtime or mode is not the
# previous snapshot's are not linked (a link would carry the old metadata):
# they are made from the context, and the layer is still a cold build's.
touch -d 2001-02-03T04:05:06 "$C/a/f03.txt"
chmod 600 "$C/m/f07.txt"
echo "changed" >>"$C/z/f15.txt"
rebuild "mtime and mode changed" $((files - 3)) $((files - 3)) no
# A file of the previous snapshot gone (the TOC still lists it): made from
# the context.
had=0
for s in "$STRATA_ROOT"/snapshots/*/fs; do
  if [ -f "$s/data/a/f04.txt" ]; then rm "$s/data/a/f04.txt"; had=1; fi
done
[ $had = 1 ] || fail "no snapshot holds data/a/f04.txt"
echo "changed" >>"$C/z/f14.txt"
rebuild "a file gone from the previous snapshot" $((files - 2)) $((files - 2))

# ------------------------------------------------ the previous snapshot tampered with
# A linked file of the previous snapshot rewritten in place, keeping its size
# and times: the COPY still links it, but the layer's bytes are the context's
# (the previous layer's frames), never the tampered inode's.
prev=""
for s in "$STRATA_ROOT"/snapshots/*/fs; do
  [ -f "$s/data/m/f05.txt" ] && prev="$s/data/m/f05.txt"
done
[ -n "$prev" ] || fail "no snapshot holds data/m/f05.txt"
python3 - "$prev" <<'PY'
import os, sys
p = sys.argv[1]
st = os.stat(p)
data = open(p, "rb").read()
with open(p, "r+b") as f:
    f.write(data.upper())
os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
PY
[ "$(cat "$prev")" != "$(cat "$C/m/f05.txt")" ] || fail "the snapshot's file was not changed"
echo "changed" >>"$C/z/f18.txt"
# The tampered file is still linked, and its frames taken from the layer.
rebuild "a tampered snapshot file" $((files - 1)) $((files - 1)) yes

# ------------------------------------------------ the previous blob damaged
# One byte of big1.bin's frames flipped in the previous blob: those frames
# fail their check as they are decoded, and the step is made again copying
# every file (the build says so, naming the blob and the file).
cat >"$WORK/damage.py" <<'PY'
import json, struct, subprocess, sys
path, name = sys.argv[1], sys.argv[2]
b = open(path, "rb").read()
off, clen = struct.unpack("<2Q", b[-64:-48])
toc = json.loads(subprocess.run(["zstd", "-dcq"], input=b[off:off + clen], capture_output=True, check=True).stdout)
e = [e for e in toc["entries"] if e["name"] == name][0]
pos = (e["offset"] + e["endOffset"]) // 2
with open(path, "r+b") as f:
    f.seek(pos); c = f.read(1); f.seek(pos); f.write(bytes([c[0] ^ 0x55]))
PY
chmod u+w "$(blob "$last_layer")"
python3 "$WORK/damage.py" "$(blob "$last_layer")" data/big1.bin || fail "damage the previous blob"
echo "changed" >>"$C/z/f17.txt"
damaged=$last_layer
rebuild "a damaged frame in the previous blob" $((files - 1)) none
assert_contains "$(cat "$WORK/rebuild$n.log")" "$damaged: the frames of data/big1.bin do not decode to its content; copying every file" "a damaged frame in the previous blob: the warning"
assert_contains "$(cat "$WORK/rebuild$n.log")" "the previous build's layer is damaged: copying every file" "a damaged frame in the previous blob: the step's note"

# The previous blob truncated: no TOC, nothing reused or linked.
chmod u+w "$(blob "$last_layer")"
truncate -s -100 "$(blob "$last_layer")"
echo "changed" >>"$C/z/f16.txt"
rebuild "a truncated previous blob" - none
if grep -q "unchanged files linked from the previous build" "$WORK/last.log"; then fail "files linked from a previous build whose blob is truncated"; fi
echo PASS
