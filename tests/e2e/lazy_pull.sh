#!/usr/bin/env bash
# Lazy pulls against Debian's docker-registry on 127.0.0.1: `strata run
# --lazy REGISTRY/IMAGE` of an image the store does not have fetches the
# manifest, the config and the zstd:chunked layers' tables of contents, then
# only the frames of the files that are read (range requests), each checked
# against its TOC digest; `strata pull` completes the rest later and checks
# the whole blob. Commands that need whole layers say so; gc removes a lazy
# pull with its image; a build FROM it completes the pull first; frames
# the registry serves damaged are never served
# (EIO), and a pull that cannot complete leaves the store as it was.
# Needs root, overlayfs, /dev/fuse, busybox-static, docker-registry.
. "$(dirname "$0")/lib.sh"
[ -c /dev/fuse ] || skip "needs /dev/fuse"
need python3
need docker-registry
need zstd
[ -x /bin/busybox ] || skip "needs /bin/busybox (apt-get install busybox-static)"
. "$(dirname "$0")/../support/docker_registry.sh"
registry_start "$WORK/registry" || fail "docker-registry did not start"
on_exit "registry_stop $WORK/registry"
# Its access log (a line per request, with the body's size) is the
# registry's own count of what strata fetched.
registry_stop "$WORK/registry"
sed -i 's/^    disabled: true$/    disabled: false/' "$WORK/registry/config.yml"
registry_spawn "$WORK/registry" || fail "docker-registry did not start again"
RLOG=$WORK/registry/log
# served BLOBHEX FROM-LINE: bytes of that blob the registry sent since the line.
served() {
  tail -n +"$(( $2 + 1 ))" "$RLOG" | awk -v b="$1" '$0 ~ b && / HTTP\/1\.[01]" [0-9]+ [0-9]+ / {
      for (i = 1; i <= NF; i++) if ($i ~ /HTTP\/1\.[01]"$/) { n += $(i + 2); break } }
    END { print n + 0 }'
}

strata bootstrap busybox >/dev/null || fail "bootstrap"
C=$WORK/ctx
mkdir -p "$C/data"
# 24 files of 2 MiB, one of 6 MiB (several chunks), incompressible: a 54 MB layer.
python3 - "$C/data" <<'PY'
import os, sys
d = sys.argv[1]
for i in range(24):
    with open(os.path.join(d, "f%02d" % i), "wb") as f:
        f.write(os.urandom(2 << 20))
with open(os.path.join(d, "big"), "wb") as f:
    f.write(os.urandom(6 << 20))
with open(os.path.join(d, "small"), "w") as f:
    f.write("small file\n")
PY
printf 'FROM busybox\nCOPY data /data\n' >"$C/Dockerfile"
strata build -q --compression zstd -t lp "$C" >/dev/null 2>"$WORK/err" || { cat "$WORK/err"; fail "build"; }
strata push -q --compression zstd lp "$REG/t/lp:1" >/dev/null 2>"$WORK/err" || { cat "$WORK/err"; fail "push"; }
sum() { sha256sum "$C/data/$1" | cut -d' ' -f1; }

# The layer of the data: its digest and size, from the manifest.
data_layer() {
  strata inspect --format json lp | python3 -c 'import json,sys
m = json.load(sys.stdin)[0]["Manifest"]
l = max(m["layers"], key=lambda l: l["size"])
print(l["digest"][7:], l["size"])'
}
read -r HEX SIZE <<<"$(data_layer)"
[ "$SIZE" -gt 50000000 ] || fail "the data layer is $SIZE bytes"

# Bytes the store holds of a lazily pulled blob: by its record, and the data
# file's allocated blocks (what was written, by the filesystem's count).
recorded() {
  python3 - "$1/partial/$HEX/ranges" <<'PY'
import sys
have = []
for line in open(sys.argv[1]):
    op, b, e = line.split()
    b, e = int(b), int(e)
    if op == "+":
        have.append((b, e))
have.sort()
n, end = 0, 0
for b, e in have:
    if e > end:
        n += e - max(b, end)
        end = e
print(n)
PY
}
allocated() { echo $(( $(stat -c %b "$1/partial/$HEX/data") * $(stat -c %B "$1/partial/$HEX/data") )); }

# 1. run --lazy of an image not in the store: a lazy pull, then one 2 MiB
#    file read.
L=$WORK/lstore
mark=$(wc -l < "$RLOG")
STRATA_ROOT=$L strata run --rm --lazy "$REG/t/lp:1" sha256sum /data/f07 >"$WORK/out" 2>"$WORK/err" ||
  { cat "$WORK/out" "$WORK/err"; fail "run --lazy of a registry image"; }
assert_eq "$(cut -d' ' -f1 "$WORK/out")" "$(sum f07)" "the file read through the lazy pull"
assert_contains "$(cat "$WORK/err")" "Unable to find image" "run says the image is not local"
assert_contains "$(cat "$WORK/err")" "table of contents" "run says it pulls lazily"
[ -d "$L/partial/$HEX" ] || fail "no partial blob for the data layer"
[ ! -e "$L/blobs/sha256/$HEX" ] || fail "the data layer was fetched whole"
rec=$(recorded "$L")
alloc=$(allocated "$L")
sent=$(served "$HEX" "$mark")
echo "lazy run of one 2 MiB file: recorded $rec bytes, $alloc allocated, the registry sent $sent, of $SIZE"
[ "$sent" -eq "$rec" ] || fail "the registry sent $sent bytes of the layer, strata recorded $rec"
[ "$rec" -ge $((2 << 20)) ] || fail "only $rec bytes recorded: the file is 2 MiB"
[ $((rec * 100)) -le $((SIZE * 5)) ] || fail "$rec bytes of $SIZE fetched: more than 5%"
[ $((alloc * 100)) -le $((SIZE * 6)) ] || fail "$alloc bytes of $SIZE written: more than 6%"

# 2. The image is named; reading more fetches more, in ranges; files read
#    before come from the store (the registry may be gone).
STRATA_ROOT=$L strata images | grep -q "t/lp" || fail "the lazily pulled image is not listed"
STRATA_ROOT=$L strata run --rm --lazy "$REG/t/lp:1" sh -c 'sha256sum /data/big; cat /data/small' >"$WORK/out" 2>"$WORK/err" ||
  { cat "$WORK/out" "$WORK/err"; fail "second lazy run"; }
assert_eq "$(head -1 "$WORK/out" | cut -d' ' -f1)" "$(sum big)" "a 6 MiB file of several chunks"
assert_eq "$(tail -1 "$WORK/out")" "small file" "a small file"
rec2=$(recorded "$L")
[ "$rec2" -gt $((rec + (6 << 20))) ] || fail "the second run fetched $((rec2 - rec)) bytes"
registry_stop "$WORK/registry"
STRATA_ROOT=$L strata run --rm "$REG/t/lp:1" sha256sum /data/f07 >"$WORK/out" 2>"$WORK/err" ||
  { cat "$WORK/out" "$WORK/err"; fail "a file fetched before, without the registry"; }
assert_eq "$(cut -d' ' -f1 "$WORK/out")" "$(sum f07)" "a file fetched before, without the registry"
if STRATA_ROOT=$L strata run --rm "$REG/t/lp:1" cat /data/f08 >"$WORK/out" 2>&1; then
  fail "a file never fetched was read without the registry"
fi
assert_contains "$(cat "$WORK/out")" "Input/output error" "a file that cannot be fetched is EIO"
registry_spawn "$WORK/registry" || fail "docker-registry did not start again"

# 3. What needs whole layers says so, and changes nothing.
expect_fail "pulled lazily" env STRATA_ROOT="$L" "$STRATA" run --rm --no-lazy "$REG/t/lp:1" true
expect_fail "strata pull" env STRATA_ROOT="$L" "$STRATA" save -o "$WORK/lp.tar" "$REG/t/lp:1"
STRATA_ROOT=$L strata verify >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "verify of a store with a lazy pull"; }

# 4. A lazy container that lasts: its monitor's strata-lazy fetches too.
STRATA_ROOT=$L strata run -d --name lp1 --lazy "$REG/t/lp:1" sh -c 'sha256sum /data/f11; sleep 60' >/dev/null 2>"$WORK/err" ||
  { cat "$WORK/err"; fail "run -d --lazy"; }
on_exit "STRATA_ROOT=$L $STRATA rm -f lp1 >/dev/null 2>&1"
for _ in $(seq 50); do
  [ -n "$(STRATA_ROOT=$L strata logs lp1 2>/dev/null)" ] && break
  sleep 0.2
done
assert_eq "$(STRATA_ROOT=$L strata logs lp1 | cut -d' ' -f1)" "$(sum f11)" "a lazy container's read"
STRATA_ROOT=$L strata rm -f lp1 >/dev/null

# 5. strata pull completes it: only the missing bytes, the whole blob checked.
before=$(recorded "$L")
mark=$(wc -l < "$RLOG")
STRATA_ROOT=$L strata pull "$REG/t/lp:1" >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "pull to complete"; }
sent=$(served "$HEX" "$mark")
# The missing bytes, and at most the present ones between gaps less than
# 1 MiB apart (fetched with them): never the whole layer again.
[ "$sent" -ge $((SIZE - before)) ] && [ "$sent" -le $((SIZE - before + (4 << 20))) ] ||
  fail "completing the pull: the registry sent $sent bytes, $((SIZE - before)) were missing"
assert_contains "$(cat "$WORK/out")" "the rest of a lazy pull" "pull completes the lazy layer"
[ ! -e "$L/partial/$HEX" ] || fail "the partial blob stayed after the pull"
[ "$(sha256sum "$L/blobs/sha256/$HEX" | cut -d' ' -f1)" = "$HEX" ] || fail "the completed blob"
STRATA_ROOT=$L strata run --rm --no-lazy "$REG/t/lp:1" sha256sum /data/f20 >"$WORK/out" 2>"$WORK/err" ||
  { cat "$WORK/out" "$WORK/err"; fail "run --no-lazy after the pull"; }
assert_eq "$(cut -d' ' -f1 "$WORK/out")" "$(sum f20)" "the completed image unpacked"
STRATA_ROOT=$L strata verify >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "verify after the pull"; }
echo "pull completed the layer: $((SIZE - before)) bytes were missing"

# 6. gc: a lazy pull goes with its image.
P=$WORK/pstore
STRATA_ROOT=$P strata pull -q --lazy "$REG/t/lp:1" >/dev/null || fail "pull --lazy"
[ -d "$P/partial/$HEX" ] || fail "pull --lazy made no partial blob"
STRATA_ROOT=$P strata gc >/dev/null || fail "gc"
[ -d "$P/partial/$HEX" ] || fail "gc removed the partial blob of a named image"
STRATA_ROOT=$P strata rmi "$REG/t/lp:1" >/dev/null || fail "rmi"
STRATA_ROOT=$P strata gc >/dev/null || fail "gc"
[ ! -e "$P/partial/$HEX" ] || fail "gc left the partial blob of a removed image"

# 7. A build FROM a lazily pulled image completes its pull first (the build
#    unpacks its layers).
B=$WORK/bstore
STRATA_ROOT=$B strata pull -q --lazy "$REG/t/lp:1" >/dev/null || fail "pull --lazy"
mkdir -p "$WORK/bctx"
printf 'FROM %s\nRUN sha256sum /data/f05 > /sum\n' "$REG/t/lp:1" >"$WORK/bctx/Dockerfile"
STRATA_ROOT=$B strata build -q -t built "$WORK/bctx" >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "build FROM a lazily pulled image"; }
[ ! -e "$B/partial/$HEX" ] || fail "the build left the base's layer partial"
STRATA_ROOT=$B strata run --rm built cat /sum >"$WORK/out" 2>"$WORK/err" || { cat "$WORK/err"; fail "run the build"; }
assert_eq "$(cut -d' ' -f1 "$WORK/out")" "$(sum f05)" "a build on a lazily pulled base"

# 8. Hostile registry: one file's frames damaged in the registry's copy of
#    the blob. That file is never served (EIO, logged naming it), others
#    are; a pull cannot complete and leaves the image as it was.
frames=$(python3 - "$L/blobs/sha256/$HEX" <<'PY'
import json, struct, subprocess, sys
b = open(sys.argv[1], "rb").read()
footer = b[-64:]
off, length, raw = struct.unpack("<QQQ", footer[:24])
toc = json.loads(subprocess.run(["zstd", "-dc"], input=b[off:off + length], capture_output=True, check=True).stdout)
for e in toc["entries"]:
    if e.get("name") == "data/f03" and e["type"] == "reg":
        print(e["offset"], e["endOffset"])
PY
)
read -r fb fe <<<"$frames"
[ -n "$fe" ] || fail "no frames for data/f03 in the TOC"
regblob=$(find "$WORK/registry/storage" -path "*/blobs/sha256/*/$HEX/data")
[ -f "$regblob" ] || fail "the registry's copy of the blob"
python3 - "$regblob" "$(( (fb + fe) / 2 ))" <<'PY'
import sys
p, at = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(at)
    c = f.read(1)
    f.seek(at)
    f.write(bytes([c[0] ^ 0xFF]))
PY
H=$WORK/hstore
STRATA_ROOT=$H strata pull -q --lazy "$REG/t/lp:1" >/dev/null || fail "pull --lazy (the TOC is intact)"
if STRATA_ROOT=$H strata run --rm "$REG/t/lp:1" cat /data/f03 >"$WORK/out" 2>&1; then
  fail "damaged frames were served"
fi
assert_contains "$(cat "$WORK/out")" "Input/output error" "damaged frames are EIO"
STRATA_ROOT=$H strata run --rm "$REG/t/lp:1" sha256sum /data/f04 >"$WORK/out" 2>"$WORK/err" ||
  { cat "$WORK/out" "$WORK/err"; fail "an intact file next to a damaged one"; }
assert_eq "$(cut -d' ' -f1 "$WORK/out")" "$(sum f04)" "an intact file next to a damaged one"
expect_fail "$HEX" env STRATA_ROOT="$H" "$STRATA" pull "$REG/t/lp:1"
[ -d "$H/partial/$HEX" ] || fail "a failed pull removed the partial blob"
[ ! -e "$H/blobs/sha256/$HEX" ] || fail "a failed pull stored the damaged blob"
STRATA_ROOT=$H strata run --rm "$REG/t/lp:1" sha256sum /data/f04 >"$WORK/out" 2>"$WORK/err" ||
  { cat "$WORK/out" "$WORK/err"; fail "the image after a failed pull"; }
assert_eq "$(cut -d' ' -f1 "$WORK/out")" "$(sum f04)" "the image after a failed pull"
echo "lazy pull: ok"
