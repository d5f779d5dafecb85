#!/usr/bin/env bash
# strata verify compares every unpacked snapshot (pulled/bootstrapped layers
# and build steps' upper directories) with its layer; --repair removes the
# damaged ones and run, build and mount unpack them again.
. "$(dirname "$0")/lib.sh"

strata bootstrap busybox >/dev/null || fail "bootstrap"
C=$WORK/ctx
mkdir -p "$C"
mkdir -p "$C/tree/sub"; echo a > "$C/tree/a"; echo b > "$C/tree/sub/b"; ln -s a "$C/tree/l"
cat > "$C/Dockerfile" <<'EOF'
FROM busybox
COPY --chmod=0640 tree /copied/
RUN mkdir -p /data/sub /data/gone && echo hi > /data/f && ln /data/f /data/hl && ln -s f /data/sl && \
    chmod 4711 /data/f && mkfifo /data/fifo && chown 12:34 /data/sub && rm -rf /etc/group /home
RUN rm -rf /data/sub && mkdir /data/sub && touch /data/sub/new && rm -rf /data/gone && echo more >> /data/f
EOF
strata build --progress plain -t verify/test "$C" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; fail "build"; }
strata run --rm verify/test true || fail "run"

out=$(strata verify) || fail "verify on a clean store: $out"
assert_contains "$out" "all blobs, images and snapshots verified" "verify summary"
assert_contains "$out" " 4 snapshot(s)" "the base layer and the three build steps are compared"

chains=($(strata inspect --format json verify/test | sed -n '/"diff_ids"/,/]/p' | grep -o 'sha256:[0-9a-f]\{64\}'))
[ ${#chains[@]} -eq 4 ] || fail "four diff IDs, got ${#chains[@]}"
# chain IDs: sha256 of "<parent chain> <diff id>"
c0=${chains[0]}
cc=sha256:$(printf '%s %s' "$c0" "${chains[1]}" | sha256sum | cut -d' ' -f1)
c1=sha256:$(printf '%s %s' "$cc" "${chains[2]}" | sha256sum | cut -d' ' -f1)
c2=sha256:$(printf '%s %s' "$c1" "${chains[3]}" | sha256sum | cut -d' ' -f1)
snap() { echo "$STRATA_ROOT/snapshots/${1#sha256:}/fs"; }
for c in $c0 $cc $c1 $c2; do [ -d "$(snap $c)" ] || fail "snapshot $c exists"; done

# Damage: an edited file in the base, a removed whiteout and a changed mode
# in step 1, a removed opaque mark and an extra file in step 2.
printf 'root:x:0:0:root:/root:/bin/sh\nevil::0:0::/:/bin/sh\n' > "$(snap $c0)/etc/passwd"
rm "$(snap $c1)/etc/group"
chmod 0755 "$(snap $c1)/data/hl"
setfattr -x trusted.overlay.opaque "$(snap $c2)/data/sub" 2>/dev/null ||
  python3 -c 'import os,sys; os.removexattr(sys.argv[1], "trusted.overlay.opaque")' "$(snap $c2)/data/sub"
echo x > "$(snap $c2)/data/extra"
rm "$(snap $cc)/copied/l"; ln -s b "$(snap $cc)/copied/l"

out=$(strata verify 2>&1); rc=$?
[ $rc -eq 1 ] || fail "verify should exit 1 on damaged snapshots, got $rc: $out"
assert_contains "$out" "snapshot $c0: /etc/passwd: " "edited file"
assert_contains "$out" "snapshot $c1: /etc/group: whiteout is missing" "removed whiteout"
assert_contains "$out" "snapshot $c1: /data/hl: mode is 0755, the layer has 4711" "mode of a hard link"
assert_contains "$out" "snapshot $c1: /data/f: mode is 0755, the layer has 4711" "mode of its target (one inode)"
assert_contains "$out" "snapshot $c2: /data/sub: is not marked opaque" "opaque mark"
assert_contains "$out" "snapshot $c2: /data/extra: a regular file the layer does not have" "extra file"
assert_contains "$out" "snapshot $cc: /copied/l: symlink target is \"b\", the layer has \"a\"" "symlink in a COPY step"

out=$(strata verify --repair 2>&1) || fail "verify --repair should succeed when it repaired everything: $out"
for c in $c0 $cc $c1 $c2; do
  assert_contains "$out" "removed snapshot $c" "repair removes $c"
  [ ! -e "$(snap $c)" ] || fail "snapshot $c removed"
done
strata verify >/dev/null || fail "verify after repair"

# run --no-lazy unpacks the base again (the build snapshots are not its layers;
# without it, run would serve the image lazily).
assert_eq "$(strata run --rm --no-lazy busybox head -1 /etc/passwd)" "root:x:0:0:root:/root:/bin/sh" "run --no-lazy re-creates the base"
[ -d "$(snap $c0)" ] || fail "run re-created the base snapshot"
grep -q evil "$(snap $c0)/etc/passwd" && fail "the re-created snapshot has the layer's content"
# A cached build restores the step snapshots from the cached layers.
strata build --progress plain -t verify/test "$C" >"$WORK/build2.log" 2>&1 || { cat "$WORK/build2.log" >&2; fail "rebuild"; }
grep -q CACHED "$WORK/build2.log" || fail "the rebuild is cached"
rm -rf "$STRATA_ROOT/snapshots/${c2#sha256:}"
# mount unpacks whatever is missing.
mkdir -p "$WORK/mnt"
strata mount --driver overlay verify/test "$WORK/mnt" || fail "mount"
on_exit "umount -l $WORK/mnt 2>/dev/null"
[ -e "$WORK/mnt/data/sub/new" ] && [ ! -e "$WORK/mnt/etc/group" ] && [ "$(cat "$WORK/mnt/data/f")" = "hi
more" ] || fail "mounted image content"
[ -z "$(ls "$WORK/mnt/data/sub" | grep -v '^new$')" ] || fail "opaque dir hides the old content"
[ "$(cat "$WORK/mnt/copied/sub/b")" = b ] && [ "$(readlink "$WORK/mnt/copied/l")" = a ] || fail "COPY content"
strata umount "$WORK/mnt" || fail "umount"
for c in $c0 $cc $c1 $c2; do [ -d "$(snap $c)" ] || fail "snapshot $c re-created"; done
out=$(strata verify) || fail "verify after re-creating: $out"
assert_contains "$out" " 4 snapshot(s)" "all four compared again"
echo ok
