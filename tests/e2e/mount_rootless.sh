#!/usr/bin/env bash
# strata-overlay and `strata mount` as an unprivileged user: FUSE mounts
# through the setuid fusermount3, the store under $XDG_DATA_HOME/strata, fuse
# as the default driver, a clear error for --driver overlay, unmounting (also
# of a mount whose daemon was killed) as that user.
#
# Run as root: it switches to the user "nobody" with setpriv, in a private
# mount namespace (nothing it mounts is seen outside, and everything goes
# when it ends). Where /dev/fuse is not open to every user (Debian's udev
# rule makes it 0666; a container's /dev may not), the namespace gets a 0666
# /dev/fuse node bound over it, as udev would have made it.
. "$(dirname "$0")/lib.sh"

if [ -z "${STRATA_E2E_ROOTLESS_NS:-}" ]; then
  [ "$(id -u)" -eq 0 ] || skip "needs root (to switch to an unprivileged user)"
  need setpriv util-linux
  need unshare util-linux
  fm=$(command -v fusermount3) || skip "needs fusermount3 (apt-get install fuse3)"
  [ -u "$fm" ] && [ "$(stat -c %u "$fm")" -eq 0 ] || skip "$fm is not setuid root"
  [ -c /dev/fuse ] || skip "needs /dev/fuse"
  id -u nobody >/dev/null 2>&1 || skip "needs the user nobody"
  STRATA_E2E_ROOTLESS_NS=1 unshare --mount --propagation private bash "$0"
  exit $?
fi

# ---- inside the private mount namespace, as root ----
uid=$(id -u nobody)
gid=$(id -g nobody)
if ! setpriv --reuid="$uid" --regid="$gid" --clear-groups test -r /dev/fuse -a -w /dev/fuse; then
  mkdir "$WORK/dev"
  mount -t tmpfs -o mode=755 tmpfs "$WORK/dev" || skip "cannot mount a tmpfs for /dev/fuse"
  mknod -m 666 "$WORK/dev/fuse" c 10 229 || skip "cannot make a /dev/fuse node (device cgroup?)"
  on_exit "umount -l /dev/fuse; umount -l $WORK/dev"
  mount --bind "$WORK/dev/fuse" /dev/fuse || skip "cannot bind a 0666 /dev/fuse"
fi
SOVL=$(cd "$(dirname "$STRATA")/.." && pwd)/layerfs/strata-overlay
[ -x "$SOVL" ] || fail "no strata-overlay beside $STRATA"
chmod 755 "$WORK"
U=$WORK/u
mkdir -p "$U"
chown "$uid:$gid" "$U"
# Every mount under $U goes before the work directory is removed.
on_exit "grep -o \" $U/[^ ]*\" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l"

# as_user CMD...: run CMD as nobody with a clean environment.
user_cmd=(setpriv --reuid="$uid" --regid="$gid" --clear-groups
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$U" XDG_DATA_HOME="$U/data")
as_user() { "${user_cmd[@]}" "$@"; }
mounted() { grep -q " $1 " /proc/self/mountinfo; }
daemon_of() { pgrep -u "$uid" -f "strata-overlay .* $1\$"; }

# 1. strata-overlay as the user: read-only union of two layers, then writable.
as_user mkdir -p "$U/l1/d" "$U/l2/d" "$U/m" "$U/upper" "$U/work"
as_user sh -c "echo one >$U/l1/d/a && echo base >$U/l1/top && echo two >$U/l2/d/b && echo over >$U/l2/top"
as_user "$SOVL" -o "lowerdir=$U/l2:$U/l1" "$U/m" || fail "strata-overlay as nobody"
mounted "$U/m" || fail "strata-overlay returned but $U/m is not mounted"
grep " $U/m " /proc/self/mountinfo | grep -q "fuse.strata-overlay .*user_id=$uid" ||
  fail "the mount is not the user's: $(grep " $U/m " /proc/self/mountinfo)"
# (Without allow_other, which needs user_allow_other in /etc/fuse.conf, only
# the user sees into the mount: even root gets EACCES.)
assert_eq "$(as_user find "$U/m" -printf '%P %u\n' | LC_ALL=C sort | tr '\n' ' ')" \
  " nobody d nobody d/a nobody d/b nobody top nobody " "merged tree as nobody"
assert_eq "$(as_user cat "$U/m/top" "$U/m/d/a")" "over
one" "contents as nobody"
expect_fail "Read-only file system" as_user touch "$U/m/new"
pid=$(daemon_of "$U/m") || fail "no strata-overlay process of nobody for $U/m"
as_user fusermount3 -u "$U/m" || fail "fusermount3 -u as nobody"
mounted "$U/m" && fail "$U/m still mounted after fusermount3 -u"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$pid" 2>/dev/null && fail "strata-overlay still running after its unmount"

as_user "$SOVL" -o "lowerdir=$U/l2:$U/l1,upperdir=$U/upper,workdir=$U/work" "$U/m" ||
  fail "writable strata-overlay as nobody"
as_user sh -c "echo hi >$U/m/hello && rm $U/m/d/a && mv $U/m/d $U/m/e && echo more >>$U/m/top" ||
  fail "writes through the writable mount as nobody"
assert_eq "$(as_user find "$U/m" -printf '%P\n' | LC_ALL=C sort | tr '\n' ' ')" " e e/b hello top " "writable tree"
assert_eq "$(as_user cat "$U/m/top")" "over
more" "copied-up file"
as_user fusermount3 -u "$U/m" || fail "fusermount3 -u of the writable mount"
# Unprivileged whiteouts are OCI ".wh." files (no 0:0 device without root).
[ -f "$U/upper/.wh.d" ] || [ -c "$U/upper/d" ] || fail "no whiteout for the renamed d in the upper: $(ls -a "$U/upper")"
assert_eq "$(cat "$U/upper/hello")" "hi" "new file in the upper"
assert_eq "$(cat "$U/l2/top")" "over" "the lower layer is unchanged"

# 2. strata as the user: the store under $XDG_DATA_HOME, fuse by default.
as_user "$STRATA" bootstrap busybox >/dev/null || fail "bootstrap as nobody"
[ -d "$U/data/strata" ] || fail "the store of nobody is not under \$XDG_DATA_HOME/strata"
as_user "$STRATA" unpack busybox "$U/ref" || fail "unpack as nobody"
as_user mkdir -p "$U/img"
as_user "$STRATA" mount busybox "$U/img" || fail "strata mount as nobody (default driver)"
as_user "$STRATA" mounts | grep -q "$U/img .*fuse .*ro .*busybox:latest .*mounted" ||
  fail "mounts as nobody: $(as_user "$STRATA" mounts)"
user_dump() { as_user bash -c "$(declare -f tree_dump); tree_dump \"\$1\"" - "$1"; }
[ "$(user_dump "$U/img")" = "$(user_dump "$U/ref")" ] || fail "the user's mount shows the image's files"
[ -n "$(user_dump "$U/ref")" ] || fail "empty dump of the unpacked image"
expect_fail "already a strata mount" as_user "$STRATA" mount --driver fuse busybox "$U/img"
# Busy (a process sits in it): fusermount3 -u fails, strata detaches it lazily.
"${user_cmd[@]}" sh -c "cd '$U/img' && exec sleep 60" &
holder=$!
on_exit "kill $holder 2>/dev/null"
for _ in $(seq 200); do [ "$(readlink /proc/$holder/cwd)" = "$U/img" ] && break; sleep 0.05; done
[ "$(readlink /proc/$holder/cwd)" = "$U/img" ] || fail "the busy-maker did not enter $U/img"
pid=$(daemon_of "$U/img") || fail "no strata-overlay process of nobody for $U/img"
out=$(as_user "$STRATA" umount "$U/img" 2>&1) || fail "strata umount of a busy mount as nobody: $out"
assert_contains "$out" "busy; detaching it lazily" "a busy user mount is detached"
mounted "$U/img" && fail "$U/img still mounted after strata umount"
kill "$holder"
# The daemon exits once the last user of the detached mount has gone.
for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$pid" 2>/dev/null && fail "strata-overlay still running after its lazy unmount"
[ -z "$(as_user "$STRATA" mounts | tail -n +2)" ] || fail "a mount record stayed: $(as_user "$STRATA" mounts)"

expect_fail "use --driver fuse" as_user "$STRATA" mount --driver overlay busybox "$U/img"
expect_fail "use --driver fuse" as_user "$STRATA" mount --driver overlay --writable busybox "$U/img"
[ -z "$(ls "$U/data/strata/mounts" | grep -v -e '\.mount$' -e '^lock$' || true)" ] ||
  fail "a failed writable mount left its directory: $(ls "$U/data/strata/mounts")"
mounted "$U/img" && fail "a failed overlay mount left something mounted"

# A writable mount committed as a new image, by the user.
as_user "$STRATA" mount --driver fuse --writable busybox "$U/img" || fail "mount --writable as nobody"
as_user sh -c "echo hi >$U/img/hello.txt && rm $U/img/bin/ls" || fail "writes as nobody"
as_user "$STRATA" umount --commit mine:1 "$U/img" >/dev/null || fail "umount --commit as nobody"
as_user "$STRATA" unpack mine:1 "$U/out" || fail "unpack the committed image"
assert_eq "$(cat "$U/out/hello.txt")" "hi" "the new file is in the committed image"
[ ! -e "$U/out/bin/ls" ] || fail "the deleted file is gone from the committed image"

# 3. The daemon is killed: `strata umount` as the user still clears the mount.
as_user "$STRATA" mount busybox "$U/img" || fail "mount again"
pid=$(daemon_of "$U/img") || fail "no strata-overlay process of nobody for $U/img"
kill -9 "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
as_user stat "$U/img/bin" >/dev/null 2>&1 && fail "a dead FUSE mount still answered"
as_user "$STRATA" umount "$U/img" || fail "strata umount of a dead FUSE mount as nobody"
mounted "$U/img" && fail "the dead FUSE mount stayed"
as_user "$STRATA" verify >/dev/null || fail "verify the user's store"
echo ok
