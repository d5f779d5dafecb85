#!/usr/bin/env bash
# strata run --rm as a non-root user, as podman runs rootless: as the test user
# strata-subuid (ranges in /etc/subuid and /etc/subgid, mapped through
# newuidmap/newgidmap) and as nobody (no range: the user alone is container
# root). Each user bootstraps busybox into a store of its own and runs: id
# and the id maps, writes that never reach the image, exit codes, a command
# not found, the image's owners, a -v bind of the user's own directory, both
# mount drivers (kernel overlayfs in the user namespace, strata-overlay), a
# SIGTERM and a SIGINT to strata, and clear errors (USER outside the map, no
# /dev/fuse). After each step nothing may be left: no mount in the caller's
# /proc/self/mountinfo, no temporary directory in the store, no process.
#
# Run as root: it switches users with setpriv, in a private mount namespace
# where /dev/fuse is made 0666 (as Debian's udev rule makes it; a container's
# /dev may not) once the "no /dev/fuse" error has been checked.
. "$(dirname "$0")/lib.sh"

if [ -z "${STRATA_E2E_ROOTLESS_NS:-}" ]; then
  [ "$(id -u)" -eq 0 ] || skip "needs root (to switch to unprivileged users)"
  need setpriv util-linux
  need unshare util-linux
  need tar
  command -v newuidmap >/dev/null && command -v newgidmap >/dev/null ||
    skip "needs newuidmap/newgidmap (apt-get install uidmap)"
  id -u nobody >/dev/null 2>&1 || skip "needs the user nobody"
  setpriv --reuid=65534 --regid=65534 --clear-groups unshare --user --map-root-user true 2>/dev/null ||
    skip "needs unprivileged user namespaces (sysctl user.max_user_namespaces > 0)"
  [ -c /dev/fuse ] || skip "needs /dev/fuse"
  STRATA_E2E_ROOTLESS_NS=1 unshare --mount --propagation private bash "$0"
  exit $?
fi

# ---- inside the private mount namespace, as root ----
name=strata-subuid
if ! getent passwd "$name" >/dev/null; then
  useradd --no-create-home --shell /usr/sbin/nologin --comment "strata runner tests" "$name" ||
    skip "cannot create the test user $name"
fi
if ! grep -q "^$name:" /etc/subuid || ! grep -q "^$name:" /etc/subgid; then
  usermod --add-subuids 3000000-3065535 --add-subgids 3000000-3065535 "$name" ||
    skip "cannot grant $name subordinate ids"
fi
chmod 755 "$WORK"
echo data >"$WORK/in"

# run_as USER DIR CMD...: CMD as USER with a clean environment, its store in DIR/data.
run_as() {
  local user=$1 dir=$2; shift 2
  setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")" --clear-groups \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$dir" XDG_DATA_HOME="$dir/data" \
    ${DRIVER:+STRATA_ROOTLESS_DRIVER=$DRIVER} "$@"
}

# nothing_left USER DIR: no mount under DIR, no temp dir in the store, no process.
nothing_left() {
  local user=$1 dir=$2 uid
  uid=$(id -u "$user")
  ! grep -q " $dir" /proc/self/mountinfo || fail "$user: a mount was left: $(grep " $dir" /proc/self/mountinfo)"
  [ -z "$(ls -A "$dir/data/strata/tmp" 2>/dev/null)" ] ||
    fail "$user: the store's tmp/ is not empty: $(ls -A "$dir/data/strata/tmp")"
  # strata and strata-overlay (whose environment names the user's store),
  # and the containers' commands (container root is the user on the host).
  # Other tests may run at the same time: only ours count.
  ours() {
    local p
    for p in /proc/[0-9]*; do
      tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qx "XDG_DATA_HOME=$dir/data" && echo "${p#/proc/}"
    done
    pgrep -u "$uid" -f "^sleep 100" || true
  }
  for _ in $(seq 100); do [ -z "$(ours)" ] && break; sleep 0.05; done
  [ -z "$(ours)" ] || fail "$user: processes left: $(ours | xargs -r ps -o pid,user,args -p)"
}

# An image with a file and a directory of uid 1000 (a layer made from a tar
# archive that says so), built by the user itself.
make_owned_image() {
  local user=$1 dir=$2
  # (Unpacked without root every file is the user's: the archive says root.)
  run_as "$user" "$dir" "$STRATA" unpack busybox "$dir/bb" 2>/dev/null || fail "$user: unpack busybox"
  run_as "$user" "$dir" tar -C "$dir/bb" --owner=0 --group=0 -cf "$dir/bb.tar" . || fail "$user: tar"
  run_as "$user" "$dir" mkdir -p "$dir/extra/home/u"
  run_as "$user" "$dir" sh -c "echo mine >'$dir/extra/home/u/owned'"
  run_as "$user" "$dir" tar -C "$dir/extra" --no-recursion --owner=1000 --group=1000 -rf "$dir/bb.tar" home/u home/u/owned ||
    fail "$user: tar"
  run_as "$user" "$dir" "$STRATA" import "$dir/bb.tar" -t owned:1 >/dev/null 2>&1 || fail "$user: import"
}

# check_user USER EXPECTED_UID_MAP: the whole run as USER.
check_user() {
  local user=$1 map=$2 U uid gid out err rc
  U=$WORK/$user
  mkdir -p "$U/vol"
  uid=$(id -u "$user"); gid=$(id -g "$user")
  chown -R "$uid:$gid" "$U"
  echo hello >"$U/vol/f" && chown "$uid:$gid" "$U/vol/f"
  s() { run_as "$user" "$U" "$STRATA" "$@"; }

  s bootstrap busybox >/dev/null || fail "$user: bootstrap"
  out=$(s run --rm busybox id) || fail "$user: run id: $out"
  assert_contains "$out" "uid=0(root) gid=0(root)" "$user: container root"
  assert_eq "$(s run --rm busybox cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //' | tr '\n' ';')" "$map" "$user: uid map"
  assert_eq "$(s run --rm busybox sh -c 'echo $$')" "1" "$user: PID 1"

  # Writes stay in the throwaway upper.
  s run --rm busybox sh -c 'echo x >/new && rm /bin/ls && echo changed >/etc/passwd' || fail "$user: writes"
  s run --rm busybox sh -c 'test ! -e /new && test -e /bin/ls && grep -q root /etc/passwd' ||
    fail "$user: a write reached the image"
  nothing_left "$user" "$U"

  # Exit codes as for root.
  s run --rm busybox sh -c 'exit 7'; rc=$?
  assert_eq "$rc" 7 "$user: exit status"
  s run --rm busybox nosuchcommand 2>/dev/null; rc=$?
  assert_eq "$rc" 127 "$user: not found"
  expect_fail 'executable file not found' s run --rm busybox nosuchcommand
  s run --rm busybox /etc/passwd 2>/dev/null; rc=$?
  assert_eq "$rc" 126 "$user: not executable"
  s run --rm --init busybox sh -c 'kill -TERM $$; sleep 5'; rc=$?
  assert_eq "$rc" 143 "$user: death by SIGTERM"

  # Owners: the image's, as far as the map allows.
  make_owned_image "$user" "$U"
  out=$(s run --rm owned:1 stat -c '%u:%g %n' /bin/busybox /etc/passwd /home/u /home/u/owned) ||
    fail "$user: stat: $out"
  if [ "$user" = nobody ]; then
    # Only container root is mapped: uid 1000's files are the user's (root).
    assert_eq "$(echo $out)" "0:0 /bin/busybox 0:0 /etc/passwd 0:0 /home/u 0:0 /home/u/owned" "$user: owners"
    expect_fail "/etc/subuid" s run --rm -u 1000 busybox id
  else
    # Without newuidmap (not in PATH) the ranges cannot be mapped: a warning
    # says so, and USER 1000 is refused naming what to install.
    err=$(setpriv --reuid="$uid" --regid="$gid" --clear-groups env -i PATH=/nonexistent HOME="$U" \
      XDG_DATA_HOME="$U/data" "$STRATA" run --rm -u 1000 busybox true 2>&1) && fail "$user: -u 1000 without newuidmap ran"
    assert_contains "$err" "newuidmap (package uidmap) is missing" "$user: warning without newuidmap"
    assert_contains "$err" "install newuidmap/newgidmap" "$user: error without newuidmap"
    assert_eq "$(echo $out)" "0:0 /bin/busybox 0:0 /etc/passwd 1000:1000 /home/u 1000:1000 /home/u/owned" "$user: owners"
    assert_eq "$(s run --rm -u 1000:1000 owned:1 sh -c 'id -u; echo more >>/home/u/owned; cat /home/u/owned')" "1000
mine
more" "$user: USER 1000 writes its own file"
    s run --rm -u 1000 owned:1 sh -c 'echo x >/etc/passwd' 2>/dev/null && fail "$user: uid 1000 wrote root's file"
    # On the host the image's uid 1000 is the subordinate id 999.
    sub=$(awk -F: -v n="$name" '$1 == n { print $2; exit }' /etc/subuid)
    find "$U/data/strata/snapshots" -path '*/home/u/owned' -printf '%U\n' | grep -qx "$((sub + 999))" ||
      fail "$user: the snapshot's uid-1000 file is not owned by subordinate id $((sub + 999))"
  fi
  nothing_left "$user" "$U"

  # -v: the user's own directory, read-write, and read-only.
  assert_eq "$(s run --rm -v "$U/vol:/mnt" busybox sh -c 'stat -c %u /mnt/f; cat /mnt/f; echo back >/mnt/g')" "0
hello" "$user: -v"
  assert_eq "$(stat -c %u "$U/vol/g")" "$uid" "$user: a file written to the volume belongs to the user"
  s run --rm -v "$U/vol:/mnt:ro" busybox sh -c 'echo x >/mnt/h' 2>/dev/null && fail "$user: a :ro volume took a write"
  assert_eq "$(s run --rm -v "$WORK/in:/in:ro" busybox cat /in)" data \
    "$user: root's 0644 file is readable through a :ro volume"
  nothing_left "$user" "$U"

  # Both drivers: kernel overlayfs in the user namespace, and strata-overlay.
  DRIVER=overlay s run --rm busybox head -1 /proc/self/mountinfo | grep -q ' / .* overlay ' ||
    fail "$user: the root is not overlayfs: $(DRIVER=overlay s run --rm busybox head -1 /proc/self/mountinfo)"
  DRIVER=fuse s run --rm busybox head -1 /proc/self/mountinfo | grep -q 'fuse.strata-overlay' ||
    fail "$user: the root is not strata-overlay: $(DRIVER=fuse s run --rm busybox head -1 /proc/self/mountinfo)"
  DRIVER=fuse s run --rm busybox sh -c 'echo x >/new && rm /bin/ls && id -u' >/dev/null || fail "$user: fuse writes"
  DRIVER=fuse s run --rm busybox sh -c 'test ! -e /new && test -e /bin/ls' || fail "$user: fuse: a write reached the image"
  if [ "$user" != nobody ]; then
    assert_eq "$(DRIVER=fuse s run --rm -u 1000 owned:1 sh -c 'stat -c %u:%g /home/u/owned; touch /home/u/new; stat -c %u /home/u/new')" \
      "1000:1000
1000" "$user: fuse: owners"
  fi
  DRIVER=fuse s run --rm busybox sh -c 'exit 3'; rc=$?
  assert_eq "$rc" 3 "$user: fuse: exit status"
  nothing_left "$user" "$U"

  # The writable layer: in memory by default (nothing shows in the store's
  # tmp/ while a container runs), in a directory of tmp/ with --scratch disk;
  # with both drivers.
  for drv in overlay fuse; do
    assert_eq "$(DRIVER=$drv s run --rm busybox sh -c 'echo m >/f && cat /f')" m "$user: ($drv) memory scratch"
    assert_eq "$(DRIVER=$drv s run --rm --scratch disk busybox sh -c 'echo d >/f && cat /f')" d "$user: ($drv) --scratch disk"
  done
  DRIVER=overlay s run --rm busybox sleep 2 & pid=$!
  sleep 1
  [ -z "$(ls -A "$U/data/strata/tmp")" ] || fail "$user: the memory scratch showed in tmp/: $(ls -A "$U/data/strata/tmp")"
  wait $pid || fail "$user: run with the memory scratch"
  DRIVER=overlay s run --rm --scratch disk busybox sleep 2 & pid=$!
  sleep 1
  ls "$U/data/strata/tmp" | grep -q '^run-' || fail "$user: --scratch disk should use a directory in tmp/"
  wait $pid || fail "$user: run with --scratch disk"
  nothing_left "$user" "$U"

  # SIGTERM and SIGINT to strata: the container ends, nothing stays.
  for sig in TERM INT; do
    for drv in overlay fuse; do
      # (setpriv execs env, which execs strata: $! is strata.)
      setpriv --reuid="$uid" --regid="$gid" --clear-groups env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        HOME="$U" XDG_DATA_HOME="$U/data" STRATA_ROOTLESS_DRIVER=$drv "$STRATA" run --rm busybox sleep 100 &
      pid=$!
      for _ in $(seq 200); do pgrep -u "$uid" -f "^sleep 100" >/dev/null && break; sleep 0.05; done
      pgrep -u "$uid" -f "^sleep 100" >/dev/null || fail "$user: ($drv) the container did not start"
      kill -"$sig" "$pid"
      wait "$pid"; rc=$?
      [ "$rc" -eq $((128 + $(kill -l "$sig"))) ] || fail "$user: SIG$sig ($drv): exit $rc"
      pgrep -u "$uid" -f "^sleep 100" >/dev/null && fail "$user: SIG$sig ($drv): the container still runs"
      nothing_left "$user" "$U"
    done
  done

  # An opaque directory (a layer that replaced /etc, committed by the user
  # from a writable FUSE mount): user.overlay.opaque, honoured by both drivers.
  if fm=$(command -v fusermount3) && [ -u "$fm" ]; then
    mkdir -p "$U/m" && chown "$uid:$gid" "$U/m"
    s mount --driver fuse --writable busybox "$U/m" || fail "$user: mount --writable"
    run_as "$user" "$U" sh -c "rm -rf '$U/m/etc' && mkdir '$U/m/etc' && echo new >'$U/m/etc/only'" ||
      fail "$user: replacing /etc in the writable mount"
    s umount --commit opq:1 "$U/m" >/dev/null || fail "$user: umount --commit"
    for drv in overlay fuse; do
      assert_eq "$(DRIVER=$drv s run --rm opq:1 sh -c 'cat /etc/only; ls /etc/passwd 2>&1 >/dev/null | wc -l')" "new
1" "$user: opaque /etc ($drv)"
    done
    s rmi opq:1 >/dev/null || fail "$user: rmi opq:1"
    nothing_left "$user" "$U"
  fi

  # rmi and gc remove the snapshots, subordinate ids' files included.
  s rmi owned:1 busybox >/dev/null || fail "$user: rmi"
  s gc >/dev/null || fail "$user: gc"
  [ -z "$(ls -A "$U/data/strata/snapshots")" ] ||
    fail "$user: snapshots left after gc: $(ls -A "$U/data/strata/snapshots")"
  s verify >/dev/null || fail "$user: verify"
}

# ---- no /dev/fuse: a root-only file bound over it, in this namespace only ----
mkdir "$WORK/dev"
mount -t tmpfs -o mode=755 tmpfs "$WORK/dev" || skip "cannot mount a tmpfs for /dev/fuse"
on_exit "umount -l $WORK/dev"
: >"$WORK/dev/closed"
chmod 600 "$WORK/dev/closed"
mount --bind "$WORK/dev/closed" /dev/fuse || skip "cannot bind over /dev/fuse"
mkdir -p "$WORK/nobody"
chown "$(id -u nobody):$(id -g nobody)" "$WORK/nobody"
run_as nobody "$WORK/nobody" "$STRATA" bootstrap busybox >/dev/null || fail "bootstrap as nobody"
DRIVER=fuse expect_fail '/dev/fuse' run_as nobody "$WORK/nobody" "$STRATA" run --rm busybox true
nothing_left nobody "$WORK/nobody"
umount /dev/fuse
# Then a /dev/fuse the users may open, where it is not already (Debian's
# udev rule makes it 0666; a container's /dev may not).
if ! run_as nobody "$WORK/nobody" test -r /dev/fuse -a -w /dev/fuse; then
  mknod -m 666 "$WORK/dev/fuse" c 10 229 || skip "cannot make a /dev/fuse node (device cgroup?)"
  on_exit "umount -l /dev/fuse"
  mount --bind "$WORK/dev/fuse" /dev/fuse || skip "cannot bind a 0666 /dev/fuse"
fi

subuid_start=$(awk -F: -v n="$name" '$1 == n { print $2; exit }' /etc/subuid)
subuid_count=$(awk -F: -v n="$name" '$1 == n { print $3; exit }' /etc/subuid)
check_user "$name" "0 $(id -u "$name") 1;1 $subuid_start $subuid_count;"
check_user nobody "0 65534 1;"
echo ok
