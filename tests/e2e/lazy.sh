#!/usr/bin/env bash
# Lazy images: `strata mount` and `strata run` of an image that is not
# unpacked serve it from its compressed layers (strata-lazy), file by file
# the same as the kernel overlay of its unpacked snapshots, for gzip, zstd
# and uncompressed layers (zstd:chunked ones indexed from their TOC, a
# damaged chunk never served); damaged indexes are rebuilt; a layer that
# cannot be read lazily is unpacked (or refused with --lazy); no /dev/fuse
# fails clearly with --lazy.
. "$(dirname "$0")/lib.sh"
[ -c /dev/fuse ] || skip "needs /dev/fuse"
need python3
need setcap libcap2-bin
DUMP="python3 $(dirname "$0")/lazy_dump.py"
# The test images are small: lazy by default all the same (the default
# threshold is 64 MiB of layers still to unpack).
export STRATA_LAZY_MIN_BYTES=0

strata bootstrap busybox >/dev/null || fail "bootstrap"
ctx=$WORK/ctx
mkdir -p "$ctx"
printf 'cap' > "$ctx/capfile"
setcap cap_net_raw+ep "$ctx/capfile" || skip "setcap does not work here"
head -c 3000000 /dev/urandom > "$ctx/rand.bin"
cat > "$ctx/Dockerfile" <<'DF'
FROM busybox
COPY capfile rand.bin /c/
RUN mkdir -p /d/sub /o /w && echo a > /d/a && echo b > /d/sub/b && echo x > /o/x && \
    echo w > /w/gone && echo keep > /w/keep && ln /d/a /d/hl && ln -s ../d/a /d/sl && \
    ln -s /nowhere /d/dangling && mkfifo /d/fifo && chmod 4755 /d/a && : > /d/empty && \
    dd if=/dev/zero bs=1M count=9 2>/dev/null | tr '\0' 'z' > /big && chown 1000:1000 /d/sub/b
RUN rm -rf /d/sub /w/gone && rm -rf /o && mkdir /o && echo y > /o/y && echo more >> /big && \
    ln /big /big-link
DF
# zstd builds write zstd:chunked layers: read lazily through their frames.
for comp in gzip zstd none; do
  strata build --no-cache --compression $comp -t lazy-$comp:1 "$ctx" >"$WORK/build-$comp.log" 2>&1 ||
    { cat "$WORK/build-$comp.log" >&2; fail "build ($comp)"; }
done

# xattrs (security.capability, user.*) through a layer of their own.
xr=$WORK/xroot
mkdir -p "$xr/bin" "$xr/etc"
cp "$ctx/capfile" "$xr/bin/ping"
setcap cap_net_raw+ep "$xr/bin/ping" || fail "setcap"
echo hi > "$xr/etc/x"
python3 -c 'import os,sys; os.setxattr(sys.argv[1], "user.note", b"v\x00w")' "$xr/etc/x" || fail "setxattr"
tar --xattrs --xattrs-include='*' -C "$xr" -cf "$WORK/x.tar" . || fail "tar --xattrs"
strata import "$WORK/x.tar" -t lazy-x:1 >/dev/null || fail "import"

snaps() { ls "$STRATA_ROOT/snapshots" 2>/dev/null | wc -l; }
# The digests of an image's layers that carry a zstd:chunked TOC annotation.
chunked_layers() {
  strata inspect --format json "$1" | python3 -c 'import json,sys
for l in json.load(sys.stdin)[0]["Manifest"]["layers"]:
    if "io.github.containers.zstd-chunked.manifest-checksum" in l.get("annotations", {}): print(l["digest"])'
}
for comp in gzip zstd none x; do
  img=lazy-$comp:1
  rm -rf "$STRATA_ROOT/snapshots"/* "$STRATA_ROOT/lazy"
  lz=$WORK/lz-$comp ov=$WORK/ov-$comp
  mkdir -p "$lz" "$ov"
  strata mount "$img" "$lz" || fail "lazy mount ($comp)"
  on_exit "umount -l $lz 2>/dev/null"
  grep -q " $lz .* fuse.strata-lazy " /proc/self/mountinfo || fail "$comp: the mount is not lazy: $(grep " $lz " /proc/self/mountinfo)"
  assert_eq "$(snaps)" 0 "$comp: a lazy mount unpacks nothing"
  [ -n "$(ls "$STRATA_ROOT/lazy/")" ] || fail "$comp: no index kept in the store"
  if [ $comp = zstd ]; then
    # zstd:chunked layers are indexed from their TOC: no pass, nothing kept.
    chunked=$(chunked_layers "$img")
    [ "$(echo "$chunked" | wc -w)" -ge 3 ] || fail "zstd: the build wrote no zstd:chunked layers: $chunked"
    for d in $chunked; do
      [ ! -e "$STRATA_ROOT/lazy/${d#sha256:}.idx" ] || fail "zstd: layer $d was indexed by a pass, not from its TOC"
    done
  fi
  strata mount --driver overlay "$img" "$ov" || fail "overlay mount ($comp)"
  on_exit "umount -l $ov 2>/dev/null"
  $DUMP "$lz" > "$WORK/lz-$comp.txt" || fail "dump of the lazy mount"
  $DUMP "$ov" > "$WORK/ov-$comp.txt" || fail "dump of the overlay mount"
  if [ $comp = x ]; then
    grep -q "^bin/ping .*security.capability=" "$WORK/lz-$comp.txt" || fail "security.capability missing"
    grep -q "^etc/x .*user.note=760077" "$WORK/lz-$comp.txt" || fail "user xattr missing"
  else
    [ "$(wc -l < "$WORK/ov-$comp.txt")" -gt 300 ] || fail "$comp: the dump is too short"
    grep -q "^d/hl .* d/a/2 " "$WORK/lz-$comp.txt" || fail "$comp: the hard link is not one inode: $(grep '^d/hl' "$WORK/lz-$comp.txt")"
  fi
  diff "$WORK/ov-$comp.txt" "$WORK/lz-$comp.txt" >&2 || fail "$comp: the lazy mount differs from the overlay mount"
  if [ $comp != x ]; then
    for f in "$lz/bin/busybox" "$lz/big" "$lz/c/rand.bin"; do
      cmp "$f" "$ov/${f#"$lz"/}" || fail "$comp: content of $f"
    done
  fi
  touch "$lz/new" 2>/dev/null && fail "$comp: a lazy mount accepted a write"
  strata umount "$lz" || fail "umount lazy ($comp)"
  grep -q " $lz " /proc/self/mountinfo && fail "$comp: the lazy mount stayed"
  strata umount "$ov" || fail "umount overlay ($comp)"
done
for _ in $(seq 100); do pgrep -f "strata-lazy .*$WORK" >/dev/null || break; sleep 0.05; done
pgrep -af "strata-lazy .*$WORK" && fail "a strata-lazy process outlived its mount"

# run: the container sees the image, writes go to its own layer, nothing is unpacked.
rm -rf "$STRATA_ROOT/snapshots"/*
out=$(strata run --rm lazy-gzip:1 sh -c 'cat /d/a /o/y; ls /d; echo new > /d/a; cat /d/a; ls -l /d/a | cut -c1-10; grep strata-lazy /proc/self/mountinfo | wc -l') ||
  fail "run on a lazy image: $out"
assert_eq "$out" "a
y
a
dangling
empty
fifo
hl
sl
new
-rwsr-xr-x
0" "run on a lazy image"
assert_eq "$(snaps)" 0 "a lazy run unpacks nothing"
assert_eq "$(strata run --rm lazy-gzip:1 cat /d/a)" "a" "the container's writes are gone"
assert_eq "$(strata run --rm --no-lazy lazy-gzip:1 cat /d/a)" "a" "--no-lazy"
[ "$(snaps)" -gt 0 ] || fail "--no-lazy unpacks"

# mount --writable of an image that is not unpacked: kernel overlayfs (the
# writes) over a strata-lazy mount of the image as its single lower, both
# taken down by umount; the same tree as a --no-lazy writable mount after the
# same writes, deletes and renames; the store's blobs are never written;
# --commit makes the writes an image.
rm -rf "$STRATA_ROOT/snapshots"/*
wl=$WORK/wl wn=$WORK/wn
mkdir -p "$wl" "$wn"
blob_sums() { (cd "$STRATA_ROOT/blobs" && find . -type f -exec sha256sum {} + | sort); }
blobs_before=$(blob_sums)
strata mount --writable lazy-gzip:1 "$wl" || fail "writable lazy mount"
on_exit "umount -l $wl 2>/dev/null; for l in $STRATA_ROOT/mounts/rw-*/lower; do umount -l \$l 2>/dev/null; done"
grep -q " $wl .* overlay " /proc/self/mountinfo || fail "the writable lazy mount is not an overlay: $(grep " $wl " /proc/self/mountinfo)"
grep -q " $STRATA_ROOT/mounts/rw-[0-9a-f]*/lower .* fuse.strata-lazy " /proc/self/mountinfo ||
  fail "no strata-lazy lower under the writable mount"
assert_eq "$(snaps)" 0 "a writable lazy mount unpacks nothing"
assert_contains "$(strata mounts)" "overlay+lazy" "mounts shows the writable lazy mount"
strata mount --writable --no-lazy lazy-gzip:1 "$wn" || fail "writable --no-lazy mount"
on_exit "umount -l $wn 2>/dev/null"
grep -q " $wn .* overlay " /proc/self/mountinfo || fail "the --no-lazy writable mount"
modify() {
  echo new > "$1/d/a" && echo more >> "$1/big" && rm "$1/d/sl" && rm -r "$1/o" &&
    mv "$1/c" "$1/c2" && mv "$1/w/keep" "$1/w/kept" && mkdir -p "$1/n/m" && echo n > "$1/n/m/f" &&
    ln -s ../big "$1/n/l" && chmod 700 "$1/n" && chown 1000:1000 "$1/n/m/f" && mkfifo "$1/n/p" &&
    rm "$1/bin/ls" && touch -d @1000 "$1/etc/passwd"
}
modify "$wl" || fail "writes in the writable lazy mount"
modify "$wn" || fail "writes in the --no-lazy writable mount"
# mtimes of what was just written differ between the two: compared without.
nomtime() { $DUMP "$1" | awk '{$5=""; print}'; }
nomtime "$wl" > "$WORK/wl.txt" || fail "dump of the writable lazy mount"
nomtime "$wn" > "$WORK/wn.txt" || fail "dump of the --no-lazy writable mount"
grep -q "^n/m/f " "$WORK/wl.txt" && grep -q "^c2/rand.bin " "$WORK/wl.txt" || fail "the writes are not in the dump"
grep -q "^o[ /]" "$WORK/wl.txt" && fail "a deleted directory is still there"
diff "$WORK/wn.txt" "$WORK/wl.txt" >&2 || fail "the writable lazy mount differs from the --no-lazy one"
cmp "$wl/c2/rand.bin" "$ctx/rand.bin" || fail "a renamed directory's file"
assert_eq "$(blob_sums)" "$blobs_before" "a writable lazy mount writes no blob"
strata umount "$wn" || fail "umount --no-lazy writable"
strata umount --commit lazy-committed:1 "$wl" >/dev/null || fail "umount --commit of the writable lazy mount"
grep -q " $wl " /proc/self/mountinfo && fail "the writable lazy mount stayed"
grep -q " $STRATA_ROOT/mounts/" /proc/self/mountinfo && fail "the lazy lower stayed: $(grep " $STRATA_ROOT/mounts/" /proc/self/mountinfo)"
[ -z "$(ls "$STRATA_ROOT/mounts" | grep rw-)" ] || fail "the writable mount's directory stayed: $(ls "$STRATA_ROOT/mounts")"
cm=$WORK/committed
mkdir -p "$cm"
strata mount --no-lazy lazy-committed:1 "$cm" || fail "mount of the committed image"
nomtime "$cm" > "$WORK/cm.txt" || fail "dump of the committed image"
strata umount "$cm" || fail "umount committed"
diff "$WORK/wn.txt" "$WORK/cm.txt" >&2 || fail "the committed image differs from the writes"
# The overlay unmounted by hand (or gone with a reboot): umount still takes
# down the lazy lower; gc takes a lower whose record is gone.
strata mount --writable --lazy lazy-zstd:1 "$wl" || fail "writable --lazy mount (zstd)"
echo z > "$wl/z" || fail "write (zstd)"
umount "$wl" || fail "umount by hand"
strata umount "$wl" || fail "umount of a writable lazy mount whose overlay is gone"
grep -q " $STRATA_ROOT/mounts/" /proc/self/mountinfo && fail "the lazy lower outlived umount"
strata mount --writable --lazy lazy-zstd:1 "$wl" || fail "writable --lazy mount (zstd), again"
umount "$wl" || fail "umount by hand"
rm "$STRATA_ROOT"/mounts/*.mount
strata gc >/dev/null || fail "gc with an orphaned writable lazy mount"
grep -q " $STRATA_ROOT/mounts/" /proc/self/mountinfo && fail "gc left the orphan's lazy lower mounted"
[ -z "$(ls "$STRATA_ROOT/mounts" | grep rw-)" ] || fail "gc left the orphan's directory"
expect_fail "needs root and the overlay driver" strata mount --writable --lazy --driver fuse lazy-gzip:1 "$wl"
for _ in $(seq 100); do pgrep -f "strata-lazy .*$WORK" >/dev/null || break; sleep 0.05; done
pgrep -af "strata-lazy .*$WORK" && fail "a strata-lazy process outlived its writable mount"
strata verify >/dev/null || fail "verify after the writable lazy mounts"

# A zstd:chunked layer whose frames do not hold what its TOC says (a byte of
# /c/rand.bin's second chunk changed in the store): reading the file is an
# error (EIO) logged naming the layer and the file, never other bytes; the
# layer's other files are still served. (zstd's frame checksum catches this
# one; frames that decode to other bytes are caught by the chunk's digest:
# the [lazy_toc] unit tests.)
rm -rf "$STRATA_ROOT/snapshots"/*
copy_layer=$(strata inspect --format json lazy-zstd:1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Manifest"]["layers"][1]["digest"])')
blobf=$STRATA_ROOT/blobs/sha256/${copy_layer#sha256:}
cp "$blobf" "$WORK/blob.saved"
on_exit "cp $WORK/blob.saved $blobf"
python3 - "$blobf" <<'PY' || fail "damage the blob"
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
# rand.bin's 3 MB of random bytes are most of the layer: its middle lies in
# the second chunk's frame (stored raw: random data does not compress).
b[len(b) // 2] ^= 0x55
open(p, "wb").write(bytes(b))
PY
out=$(strata run --rm lazy-zstd:1 sh -c 'cat /c/capfile; echo; cat /c/rand.bin >/dev/null && echo served' 2>&1) &&
  fail "a damaged chunk was served: $out"
assert_contains "$out" "cap" "the layer's other files are served"
assert_contains "$out" "Input/output error" "the damaged chunk is an I/O error"
assert_contains "$out" "layer $copy_layer: file \"c/rand.bin\"" "the log names the layer and the file"
[[ "$out" == *served* ]] && fail "the damaged file was read whole: $out"
cp "$WORK/blob.saved" "$blobf"
cmp <(strata run --rm lazy-zstd:1 cat /c/rand.bin) "$ctx/rand.bin" || fail "rand.bin after the repair"

# A damaged index is rebuilt, never trusted.
rm -rf "$STRATA_ROOT/snapshots"/*
for idx in "$STRATA_ROOT"/lazy/*.idx; do
  printf 'garbage' | dd of="$idx" bs=1 seek=200 conv=notrunc 2>/dev/null
done
mnt=$WORK/mnt-damaged
mkdir -p "$mnt"
strata mount lazy-gzip:1 "$mnt" 2>"$WORK/err" || fail "mount with damaged indexes"
on_exit "umount -l $mnt 2>/dev/null"
assert_contains "$(cat "$WORK/err")" "rebuilding it" "the damaged index is reported"
cmp "$mnt/big" <(strata run --rm --no-lazy lazy-gzip:1 cat /big) || fail "content after the rebuild"
strata umount "$mnt" || fail "umount"
strata mount lazy-gzip:1 "$mnt" 2>"$WORK/err" || fail "mount with rebuilt indexes"
[ -s "$WORK/err" ] && fail "the rebuilt index was not kept: $(cat "$WORK/err")"
strata umount "$mnt" || fail "umount"

# gc removes an index whose blob is gone, and keeps the others.
orphan=$STRATA_ROOT/lazy/$(printf 'gone' | sha256sum | cut -c1-64).idx
cp "$(ls "$STRATA_ROOT"/lazy/*.idx | head -1)" "$orphan"
n_before=$(ls "$STRATA_ROOT/lazy" | wc -l)
strata gc >/dev/null || fail "gc"
[ ! -e "$orphan" ] || fail "gc left the index of a blob that is not there"
assert_eq "$(ls "$STRATA_ROOT/lazy" | wc -l)" "$((n_before - 1))" "gc keeps the indexes of present blobs"

# One zstd frame over 16 MiB (as Docker writes zstd, and strata's plain zstd
# writer that import uses; builds write zstd:chunked, a frame per 1 MiB
# chunk) cannot be read lazily: --lazy says so, the default unpacks.
mkdir -p "$WORK/bigframe"
head -c $((20 << 20)) /dev/urandom >"$WORK/bigframe/huge"
tar -C "$WORK/bigframe" -cf "$WORK/bigframe.tar" . || fail "tar bigframe"
strata import --compression zstd "$WORK/bigframe.tar" -t lazy-bigframe:1 >/dev/null || fail "import bigframe"
rm -rf "$STRATA_ROOT/snapshots"/*
expect_fail "cannot be read lazily" strata mount --lazy lazy-bigframe:1 "$mnt"
strata mount lazy-bigframe:1 "$mnt" || fail "mount of an unseekable image"
grep -q " $mnt " /proc/self/mountinfo || fail "the unseekable image is not mounted"
grep -q " $mnt .* fuse.strata-lazy " /proc/self/mountinfo && fail "the unseekable image is mounted lazily"
[ "$(snaps)" -gt 0 ] || fail "the unseekable image is not unpacked"
cmp "$mnt/huge" "$WORK/bigframe/huge" || fail "the unseekable image's file"
strata umount "$mnt" || fail "umount"

# Containers that last (run -d, create + start): the monitor serves an image
# that is not unpacked through strata-lazy, its own child in its own mount
# namespace (suid,dev), from start to stop, restarts included: the CLI's exit
# does not take it down, stop and rm do; the writable layer survives a
# restart; --lazy fails at create when the image cannot be read lazily.
cleanup_containers() {
  for c in $("$STRATA" ps -aq --no-trunc 2>/dev/null); do "$STRATA" rm -f "$c" >/dev/null 2>&1; done
}
on_exit cleanup_containers
lazy_servers() { pgrep -f "strata-lazy .*$STRATA_ROOT" | wc -l; }
wait_no_server() {
  for _ in $(seq 100); do [ "$(lazy_servers)" = 0 ] && return 0; sleep 0.05; done
  fail "$1: a strata-lazy process outlived its container: $(pgrep -af "strata-lazy .*$STRATA_ROOT")"
}
# /d/a as the container sees it, once its command has appended its line.
a_after() {
  local out
  for _ in $(seq 100); do
    out=$(strata exec lzc cat /d/a 2>/dev/null)
    [ "$(printf '%s\n' "$out" | wc -l)" -ge "$1" ] && break
    sleep 0.05
  done
  printf '%s\n' "$out"
}
rm -rf "$STRATA_ROOT/snapshots"/*
cid=$(strata run -d --name lzc lazy-gzip:1 sh -c 'echo w >> /d/a; exec sleep 1000') || fail "run -d of a lazy image"
assert_eq "$(snaps)" 0 "run -d of a lazy image unpacks nothing"
mon=$(cat "$STRATA_ROOT/containers/$cid/monitor.pid")
grep -q " fuse.strata-lazy " "/proc/$mon/mountinfo" || fail "the monitor's rootfs is not lazy"
grep -q "fuse.strata-lazy" /proc/self/mountinfo && fail "the lazy mount of a container leaks onto the host"
pgrep -P "$mon" -f strata-lazy >/dev/null || fail "strata-lazy is not the monitor's child"
assert_eq "$(lazy_servers)" 1 "one server for the container"
assert_eq "$(a_after 2)" "a
w" "the container sees the image and its write"
assert_eq "$(strata exec lzc ls -l /d/a | cut -c1-10)" "-rwsr-xr-x" "setuid as unpacked"
cmp <(strata exec lzc cat /c/rand.bin) "$ctx/rand.bin" || fail "a big file through the container"
strata stop -t 1 lzc >/dev/null || fail "stop"
wait_no_server "stop"
strata start lzc >/dev/null || fail "start again"
assert_eq "$(a_after 3)" "a
w
w" "the writable layer survives a stop and start"
strata restart -t 1 lzc >/dev/null || fail "restart"
assert_eq "$(a_after 4)" "a
w
w
w" "restart"
assert_eq "$(lazy_servers)" 1 "one server after a restart"
assert_eq "$(snaps)" 0 "the container's starts unpacked nothing"
strata gc >/dev/null || fail "gc while a lazy container runs"
assert_eq "$(strata exec lzc cat /d/a 2>&1 | head -1)" "a" "the lazy rootfs after gc"
# A SIGKILL'd monitor takes its lazy server with it.
kill -9 "$(cat "$STRATA_ROOT/containers/$cid/monitor.pid")"
wait_no_server "SIGKILL of the monitor"
strata start lzc >/dev/null || fail "start after the monitor's SIGKILL"
assert_eq "$(lazy_servers)" 1 "one server after a start"
strata rm -f lzc >/dev/null || fail "rm -f"
wait_no_server "rm -f"
# A restart policy restarts the command over the same lazy rootfs.
rid=$(strata run -d --restart on-failure:2 lazy-zstd:1 sh -c 'cat /c/capfile; echo; exit 3') || fail "run -d --restart"
assert_eq "$(strata wait "$rid")" "3" "wait on a lazy container"
assert_eq "$(strata logs "$rid" | tr '\n' ' ')" "cap cap cap " "three runs over the lazy rootfs"
wait_no_server "restart policy"
strata rm "$rid" >/dev/null || fail "rm"
# run -d --rm: the container and its lazy server go when it exits.
rmid=$(strata run -d --rm lazy-gzip:1 cat /d/a) || fail "run -d --rm of a lazy image"
for _ in $(seq 100); do [ -d "$STRATA_ROOT/containers/$rmid" ] || break; sleep 0.05; done
[ -d "$STRATA_ROOT/containers/$rmid" ] && fail "run -d --rm left the lazy container: $(ls "$STRATA_ROOT/containers/$rmid")"
wait_no_server "run -d --rm"
# create + start, --lazy recorded; --no-lazy unpacks at start.
strata create --lazy --name lzcr lazy-zstd:1 cat /c/capfile >/dev/null || fail "create --lazy"
assert_eq "$(snaps)" 0 "create unpacks nothing"
assert_eq "$(strata start -a lzcr)" "cap" "start -a of a lazy container"
assert_eq "$(snaps)" 0 "start of a --lazy container unpacks nothing"
wait_no_server "create + start"
expect_fail "cannot be read lazily" strata create --lazy lazy-bigframe:1 true
nid=$(strata run -d --no-lazy lazy-gzip:1 true) || fail "run -d --no-lazy"
assert_eq "$(strata wait "$nid")" "0" "wait --no-lazy"
[ "$(snaps)" -gt 0 ] || fail "run -d --no-lazy unpacks"
assert_eq "$(lazy_servers)" 0 "run -d --no-lazy starts no lazy server"
# Automatic: an unseekable image (one big zstd frame) is unpacked at start
# (/huge is no program: the start fails after the rootfs is made).
rm -rf "$STRATA_ROOT/snapshots"/*
strata create --name bf lazy-bigframe:1 /huge >/dev/null || fail "create of an unseekable image"
strata start bf >/dev/null 2>&1
[ "$(snaps)" -gt 0 ] || fail "the unseekable image is not unpacked at start"
assert_eq "$(lazy_servers)" 0 "the unseekable image is not served lazily"
cleanup_containers

# An image with a VOLUME whose directory holds files: run, run -d and
# create fill an empty volume from the image served lazily (nothing
# unpacked), with what the unpacked image gives: the same files, owners,
# modes, times, xattrs and symlinks, and the volume's root takes the
# directory's owner and mode.
# The files (with a capability and a user xattr, which a Dockerfile's COPY
# and RUN cannot make) come from a writable mount committed as an image.
vb=$WORK/volbase
mkdir -p "$vb"
strata mount --writable --no-lazy busybox "$vb" || fail "writable mount of busybox"
mkdir -p "$vb/vol/sub" && echo one > "$vb/vol/one" && echo two > "$vb/vol/sub/two" &&
  ln -s one "$vb/vol/link" && cp "$ctx/capfile" "$vb/vol/capfile" &&
  chown -R 1000:1001 "$vb/vol/sub" && chmod 0640 "$vb/vol/one" && chown 7:8 "$vb/vol" &&
  chmod 0750 "$vb/vol" && setcap cap_net_raw+ep "$vb/vol/capfile" &&
  python3 -c 'import os,sys; os.setxattr(sys.argv[1], "user.note", b"n")' "$vb/vol/one" ||
  fail "files of the VOLUME"
strata umount --commit lazy-volbase:1 "$vb" >/dev/null || fail "commit of the VOLUME's files"
vctx=$WORK/vctx
mkdir -p "$vctx"
printf 'FROM lazy-volbase:1\nVOLUME /vol\n' > "$vctx/Dockerfile"
strata build --no-cache -t lazy-vol:1 "$vctx" >"$WORK/build-vol.log" 2>&1 ||
  { cat "$WORK/build-vol.log" >&2; fail "build (VOLUME)"; }
voldump() { # the volume's root, then its tree
  stat -c '%a %u:%g' "$STRATA_ROOT/volumes/$1/_data" && $DUMP "$STRATA_ROOT/volumes/$1/_data"
}
rm -rf "$STRATA_ROOT/snapshots"/*
assert_eq "$(strata run --rm -v lzv-run:/vol lazy-vol:1 cat /vol/sub/two)" "two" "run of a lazy image with a VOLUME"
assert_eq "$(snaps)" 0 "run with a volume filled from a lazy image unpacks nothing"
vid=$(strata run -d -v lzv-d:/vol lazy-vol:1 cat /vol/one) || fail "run -d of a lazy image with a VOLUME"
assert_eq "$(strata wait "$vid")" "0" "wait (VOLUME)"
assert_eq "$(strata logs "$vid")" "one" "the container reads the volume"
assert_eq "$(snaps)" 0 "run -d with a volume filled from a lazy image unpacks nothing"
strata create --lazy --name lzvc -v lzv-create:/vol lazy-vol:1 true >/dev/null || fail "create --lazy (VOLUME)"
assert_eq "$(snaps)" 0 "create with a volume filled from a lazy image unpacks nothing"
# An anonymous volume (the image's VOLUME alone) is filled the same way.
aid=$(strata create lazy-vol:1 true) || fail "create with an anonymous volume"
anon=$(strata inspect --format '{{range .Mounts}}{{.Name}}{{end}}' "$aid")
[ -n "$anon" ] || fail "no anonymous volume for the image's VOLUME"
assert_eq "$(snaps)" 0 "an anonymous volume filled from a lazy image unpacks nothing"
assert_eq "$(lazy_servers)" 0 "no strata-lazy left after the copy-ups"
strata run --rm --no-lazy -v lzv-unpacked:/vol lazy-vol:1 true || fail "run --no-lazy (VOLUME)"
[ "$(snaps)" -gt 0 ] || fail "--no-lazy unpacks (VOLUME)"
voldump lzv-unpacked > "$WORK/vol-unpacked.txt" || fail "dump of the volume filled from the snapshots"
grep -q "^capfile .*security.capability=" "$WORK/vol-unpacked.txt" && grep -q "^one .*user.note=6e" "$WORK/vol-unpacked.txt" ||
  fail "no xattrs in the volume: $(cat "$WORK/vol-unpacked.txt")"
head -1 "$WORK/vol-unpacked.txt" | grep -qx "750 7:8" || fail "the volume's root: $(head -1 "$WORK/vol-unpacked.txt")"
for v in lzv-run lzv-d lzv-create "$anon"; do
  voldump "$v" > "$WORK/vol-$v.txt" || fail "dump of volume $v"
  diff "$WORK/vol-unpacked.txt" "$WORK/vol-$v.txt" >&2 || fail "volume $v filled lazily differs from the unpacked image's"
done
cleanup_containers
strata volume rm lzv-run lzv-d lzv-create lzv-unpacked "$anon" >/dev/null || fail "volume rm"

# strata cp to and from a stopped container whose image is not unpacked:
# its root is the image served lazily under its writable layer, nothing
# unpacked (strata diff likewise, below).
rm -rf "$STRATA_ROOT/snapshots"/*
strata create --name lzcp lazy-gzip:1 cat /d/from-host >/dev/null || fail "create (cp)"
strata cp lzcp:/d/a "$WORK/cp-a" || fail "cp out of a stopped lazy container"
assert_eq "$(cat "$WORK/cp-a")" "a" "cp out of a stopped lazy container"
cmp <(strata cp lzcp:/c/rand.bin - | tar -xOf -) "$ctx/rand.bin" ||
  fail "cp of a big file out of a stopped lazy container"
echo host > "$WORK/from-host"
strata cp "$WORK/from-host" lzcp:/d/from-host || fail "cp into a stopped lazy container"
assert_eq "$(snaps)" 0 "cp to and from a stopped lazy container unpacks nothing"
assert_eq "$(lazy_servers)" 0 "no strata-lazy left after cp"
grep -q "fuse.strata-lazy" /proc/self/mountinfo && fail "cp left a lazy mount"
assert_eq "$(strata start -a lzcp)" "host" "the copied file in the container"
strata rm lzcp >/dev/null || fail "rm (cp)"

# A writable layer made over the lazy image, started again once the image
# is unpacked (the default then uses the snapshots): the container sees
# the same tree (changed, added, deleted and replaced entries).
rm -rf "$STRATA_ROOT/snapshots"/*
strata create --name lzsw lazy-gzip:1 sh -c '[ -e /marker ] || { echo w >> /d/a; rm /o/y /d/hl; rm -rf /w; mkdir -p /w/new; echo n > /n; touch /marker; }; exec sleep 1000' >/dev/null ||
  fail "create (switch)"
state() { # the tree as the container sees it, once its changes are made
  for _ in $(seq 100); do strata exec lzsw test -e /marker 2>/dev/null && break; sleep 0.05; done
  strata exec lzsw sh -c 'cat /d/a /n; ls -lnR /d /o /w /big /big-link | grep -v "^total"; md5sum /big /c/rand.bin'
}
strata start lzsw >/dev/null || fail "start over the lazy image"
grep -q " fuse.strata-lazy " "/proc/$(cat "$STRATA_ROOT/containers/$(strata inspect --format '{{.Id}}' lzsw)/monitor.pid")/mountinfo" ||
  fail "the first start is not lazy"
state > "$WORK/sw-lazy.txt" || fail "state over the lazy image"
strata stop -t 1 lzsw >/dev/null || fail "stop (switch)"
# strata diff over the lazy image unpacks nothing either.
strata diff lzsw > "$WORK/sw-diff-lazy.txt" || fail "diff of a container over the lazy image"
assert_eq "$(snaps)" 0 "diff of a container over a lazy image unpacks nothing"
assert_eq "$(lazy_servers)" 0 "no strata-lazy left after diff"
grep -qx "D /o/y" "$WORK/sw-diff-lazy.txt" && grep -qx "A /n" "$WORK/sw-diff-lazy.txt" &&
  grep -qx "C /d/a" "$WORK/sw-diff-lazy.txt" || fail "diff over the lazy image: $(cat "$WORK/sw-diff-lazy.txt")"
# strata export likewise: the writable layer over the image served lazily.
strata export -o "$WORK/sw-lazy.tar" lzsw || fail "export of a container over the lazy image"
assert_eq "$(snaps)" 0 "export of a container over a lazy image unpacks nothing"
assert_eq "$(lazy_servers)" 0 "no strata-lazy left after export"
# Every member of an exported tar: name, type, mode, owner, size, time, link, content hash.
tar_dump() {
  python3 - "$1" <<'PY'
import hashlib, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    for m in sorted(t.getmembers(), key=lambda m: m.name):
        h = hashlib.sha256(t.extractfile(m).read()).hexdigest() if m.isfile() else ""
        print(m.name, m.type.decode(), oct(m.mode), m.uid, m.gid, m.size, m.mtime, m.linkname, h)
PY
}
tar_dump "$WORK/sw-lazy.tar" > "$WORK/sw-lazy-tar.txt" || fail "read the export over the lazy image"
grep -q "^d/a " "$WORK/sw-lazy-tar.txt" && ! grep -q "^o/y " "$WORK/sw-lazy-tar.txt" ||
  fail "the export over the lazy image: $(head -20 "$WORK/sw-lazy-tar.txt")"
strata mount --no-lazy lazy-gzip:1 "$mnt" && strata umount "$mnt" || fail "unpack the image"
[ "$(snaps)" -gt 0 ] || fail "the image is not unpacked"
strata start lzsw >/dev/null || fail "start over the unpacked image"
assert_eq "$(lazy_servers)" 0 "the second start serves nothing lazily"
state > "$WORK/sw-unpacked.txt" || fail "state over the unpacked image"
grep -q "^w$" "$WORK/sw-lazy.txt" || fail "the container's changes are not there: $(cat "$WORK/sw-lazy.txt")"
diff "$WORK/sw-lazy.txt" "$WORK/sw-unpacked.txt" >&2 || fail "the writable layer over the unpacked image differs from over the lazy one"
strata stop -t 1 lzsw >/dev/null || fail "stop (switch), again"
strata diff lzsw > "$WORK/sw-diff-unpacked.txt" || fail "diff over the unpacked image"
diff "$WORK/sw-diff-unpacked.txt" "$WORK/sw-diff-lazy.txt" >&2 || fail "diff over the lazy image differs from over the unpacked one"
strata export -o "$WORK/sw-unpacked.tar" lzsw || fail "export over the unpacked image"
tar_dump "$WORK/sw-unpacked.tar" > "$WORK/sw-unpacked-tar.txt" || fail "read the export over the unpacked image"
# /etc's time is the second start's (it writes /etc/hosts & co. again).
diff <(grep -v "^etc 5 " "$WORK/sw-unpacked-tar.txt") <(grep -v "^etc 5 " "$WORK/sw-lazy-tar.txt") >&2 ||
  fail "export over the lazy image differs from over the unpacked one"
cleanup_containers

# Under the threshold, the default unpacks.
mnt2=$WORK/mnt-small
mkdir -p "$mnt2"
rm -rf "$STRATA_ROOT/snapshots"/*
STRATA_LAZY_MIN_BYTES=$((1 << 40)) strata mount lazy-gzip:1 "$mnt2" || fail "mount of a small image"
grep -q " $mnt2 .* overlay " /proc/self/mountinfo || fail "a small image is unpacked by default"
strata umount "$mnt2" || fail "umount"

# No /dev/fuse: --lazy fails naming it; the default unpacks.
rm -rf "$STRATA_ROOT/snapshots"/*
out=$(unshare -m sh -c "mount -t tmpfs none /dev && touch /dev/null && $STRATA mount --lazy lazy-gzip:1 $mnt" 2>&1) &&
  fail "--lazy without /dev/fuse succeeded"
assert_contains "$out" "/dev/fuse" "the error names /dev/fuse"
echo ok
