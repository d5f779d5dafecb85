#!/usr/bin/env bash
# strata build's cache sees every change of a context file made in place
# (the same context directory, as users edit it), also a change of the same
# size with the mtime put back and a second change within the same second,
# and keeps the cache when only metadata the image does not hold changed.
# Needs root and overlayfs (the ctest entry runs behind the overlay probe).
. "$(dirname "$0")/lib.sh"
need python3
[ -x /bin/busybox ] || skip "needs /bin/busybox (apt-get install busybox-static)"
strata bootstrap busybox >/dev/null || fail "bootstrap busybox"

C=$WORK/ctx
mkdir -p "$C/dir/sub"
echo "alpha" >"$C/a.txt"
echo "bravo" >"$C/dir/b.txt"
echo "charlie" >"$C/dir/sub/c.txt"
echo "ignored" >"$C/notes.txt"
printf 'notes.txt\n' >"$C/.dockerignore"
cat >"$C/Dockerfile" <<'DF'
FROM busybox
COPY a.txt /a.txt
COPY . /ctx/
RUN cat /ctx/dir/b.txt > /out.txt
DF
build() { strata build --progress plain -t cache/test "$C" >"$WORK/last.log" 2>&1 || { cat "$WORK/last.log" >&2; fail "build"; }; }
out() { rm -rf "$WORK/u"; strata unpack cache/test "$WORK/u" >/dev/null || fail "unpack"; cat "$WORK/u/out.txt"; }
# Same size, mtime put back: only the ctime (and the content) change.
rewrite() { python3 - "$1" "$2" <<'PY'
import os, sys
p, data = sys.argv[1], sys.argv[2] + "\n"
st = os.lstat(p)
assert len(data) == st.st_size
with open(p, "r+") as f:
    f.write(data)
os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
PY
}

build
assert_contains "$(cat "$WORK/last.log")" "(3 steps run, 0 cached" "first build runs everything"
assert_eq "$(out)" "bravo"
build
assert_contains "$(cat "$WORK/last.log")" "(0 steps run" "no-change rebuild"

rewrite "$C/dir/b.txt" "BRAVO"
build
log=$(cat "$WORK/last.log")
assert_contains "$log" "(2 steps run, 1 cached" "an in-place edit reruns the COPY that reads it and what follows"
assert_contains "$log" "running: 1 file changed: modified dir/b.txt" "the miss says which file changed"
assert_eq "$(out)" "BRAVO" "the image holds the edited content"

# A second edit right away (within the same second as the build that read
# the first one), again the same size with the mtime put back.
rewrite "$C/dir/b.txt" "BrAvO"
build
assert_contains "$(cat "$WORK/last.log")" "(2 steps run, 1 cached" "a racy second edit is seen"
assert_eq "$(out)" "BrAvO"

# A file in a subdirectory, after the racy window.
sleep 2.1
rewrite "$C/dir/sub/c.txt" "CHARLIE"
build
assert_contains "$(cat "$WORK/last.log")" "(2 steps run, 1 cached" "an edit deep down is seen"
out >/dev/null
assert_eq "$(cat "$WORK/u/ctx/dir/sub/c.txt")" "CHARLIE" "the image holds the edited deep file"

sleep 2.1
build
assert_contains "$(cat "$WORK/last.log")" "(0 steps run" "no-change rebuild after edits"
# Metadata the image does not hold, or an ignored file: still cached.
touch "$C/a.txt"
echo "more" >>"$C/notes.txt"
build
assert_contains "$(cat "$WORK/last.log")" "(0 steps run" "touch and an ignored file keep the cache"
# A mode change is content for COPY.
chmod 0600 "$C/a.txt"
build
assert_contains "$(cat "$WORK/last.log")" "(3 steps run, 0 cached" "a mode change reruns the COPYs"

# An extended attribute the copy keeps is content too, as in BuildKit's
# content hash: set or changed, on a file and on a directory, it reruns the
# COPY . (the image holds it), and a rebuild after it is cached; removed, the
# sources are again what an earlier build had, and that build's steps hit.
xattr() { python3 -c 'import os,sys; p,k=sys.argv[1],sys.argv[2]
if len(sys.argv) > 3: os.setxattr(p, k, sys.argv[3].encode())
else: os.removexattr(p, k)' "$@"; }
xattr_in_image() { python3 -c 'import os,sys
try: print(os.getxattr(sys.argv[1], sys.argv[2]).decode())
except OSError: print("(none)")' "$WORK/u/ctx/$1" "$2"; }
if python3 -c 'import os,sys; os.setxattr(sys.argv[1], "user.probe", b"1"); os.removexattr(sys.argv[1], "user.probe")' "$C/dir/b.txt" 2>/dev/null; then
  for step in "dir/b.txt user.tag one" "dir/b.txt user.tag two" "dir/b.txt user.tag -" "dir user.tag d1"; do
    set -- $step
    [ "$3" = - ] && set -- "$1" "$2"
    sleep 2.1
    xattr "$C/$1" "$2" ${3:+"$3"}
    build
    if [ -n "${3:-}" ]; then
      assert_contains "$(cat "$WORK/last.log")" "(2 steps run, 1 cached" "xattr $step reruns COPY . and the RUN"
    else
      assert_contains "$(cat "$WORK/last.log")" "(0 steps run, 3 cached" "xattr $step removed: the earlier build's steps"
    fi
    out >/dev/null
    assert_eq "$(xattr_in_image "$1" "$2")" "${3:-(none)}" "the image holds xattr $step"
    sleep 2.1
    build
    assert_contains "$(cat "$WORK/last.log")" "(0 steps run" "a rebuild after xattr $step is cached"
  done
else
  echo "note: the filesystem of $C has no user xattrs; the xattr cases were not run"
fi
