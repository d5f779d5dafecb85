#!/usr/bin/env bash
# docker diff, commit, export and cp of a container: a container whose
# writable layer adds, changes and deletes files lists exactly those; commit
# makes an image that runs and has them; export is the image with the
# changes; cp copies both ways and stays inside the container whatever its
# symlinks or a tar say.
. "$(dirname "$0")/lib.sh"
need python3

strata bootstrap busybox >/dev/null || fail "bootstrap"
id=$(strata create --name fs busybox sh -c 'cat /etc/new') || fail "create"
upper="$STRATA_ROOT/containers/$id/upper"
[ -d "$upper" ] || fail "the container's writable layer $upper"
assert_eq "$(strata diff fs)" "" "a new container has no changes"
expect_fail "No such container: nosuch" strata diff nosuch

# Changes: /etc/new added and /etc/passwd changed through cp (into the
# stopped container's overlay), /bin/ls deleted as overlayfs records it (a
# 0:0 character device in the upper).
echo "new file" > "$WORK/new"
printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n' > "$WORK/passwd"
strata cp "$WORK/new" fs:/etc/new || fail "cp a file into the container"
strata cp "$WORK/passwd" fs:/etc/passwd || fail "cp over a file of the image"
mkdir -p "$upper/bin" && mknod "$upper/bin/ls" c 0 0 || fail "whiteout"
assert_eq "$(strata diff fs)" "C /bin
D /bin/ls
C /etc
A /etc/new
C /etc/passwd" "diff lists the changes"
[ -e "$STRATA_ROOT/containers/$id/rootfs/etc" ] && fail "cp left the overlay mounted"

# commit: a layer over the image's, the config with -c, history with -m/-a.
out=$(strata commit -a "Jane <jane@example.com>" -m "add new" -c 'ENV STAGE=committed' fs committed:1) || fail "commit"
[[ "$out" =~ ^sha256:[0-9a-f]{64}$ ]] || fail "commit prints the image ID: $out"
assert_eq "$(strata run --rm committed:1)" "new file" "the committed image runs the container's command and has its files"
assert_eq "$(strata run --rm committed:1 cat /etc/passwd)" "$(cat "$WORK/passwd")" "changed file"
strata run --rm committed:1 test -e /bin/ls && fail "a file the container deleted is gone from the committed image"
assert_eq "$(strata run --rm committed:1 sh -c 'echo $STAGE')" "committed" "-c ENV"
hist=$(strata history --no-trunc --format json committed:1) || fail "history"
assert_contains "$hist" '"add new"' "history has the message"
assert_contains "$hist" "sh -c cat /etc/new" "history's created_by is the container's command"
assert_contains "$(strata inspect committed:1)" "jane@example.com" "the author is the image's"
strata commit -c 'CMD ["echo","other"]' fs committed:2 >/dev/null || fail "commit -c CMD"
assert_eq "$(strata run --rm committed:2)" "other" "-c CMD changes Cmd"
expect_fail "run is not a valid change command" strata commit -c 'RUN true' fs

# export: the image's files with the container's changes.
strata export fs > "$WORK/fs.tar" || fail "export"
strata export busybox > "$WORK/img.tar" || fail "export of the image"
tar -tf "$WORK/fs.tar" | sed 's|/$||' | sort > "$WORK/fs.list"
tar -tf "$WORK/img.tar" | sed 's|/$||' | sort > "$WORK/img.list"
assert_eq "$(diff "$WORK/img.list" "$WORK/fs.list" | grep '^[<>]' | tr '\n' ' ')" "< bin/ls > etc/new " "export = image + changes"
assert_eq "$(tar -xOf "$WORK/fs.tar" etc/passwd)" "$(cat "$WORK/passwd")" "export has the changed file"
strata export -o "$WORK/fs2.tar" fs || fail "export -o"
cmp -s "$WORK/fs.tar" "$WORK/fs2.tar" || fail "export -o writes the same tar"
if command -v script >/dev/null; then
    tty_out=$(script -qec "$STRATA --root $STRATA_ROOT export fs" /dev/null 2>&1)
    assert_contains "$tty_out" "cowardly refusing to save to a terminal" "export to a terminal"
fi

# cp out of the container (Docker's path rules).
strata cp fs:/etc/passwd "$WORK/p" || fail "cp out"
cmp -s "$WORK/p" "$WORK/passwd" || fail "cp out: content"
strata cp fs:/etc "$WORK/etc-copy" || fail "cp a directory to a new name"
[ -f "$WORK/etc-copy/new" ] || fail "cp DIR NEW: the directory's contents under NEW"
mkdir "$WORK/into"
strata cp fs:/etc "$WORK/into" && [ -f "$WORK/into/etc/new" ] || fail "cp DIR EXISTING: under its name"
strata cp fs:/etc/. "$WORK/into" && [ -f "$WORK/into/new" ] || fail "cp DIR/. EXISTING: the contents"
expect_fail "does not exist" strata cp fs:/etc/passwd "$WORK/missing/"
expect_fail "Could not find the file /nonexistent" strata cp fs:/nonexistent "$WORK/x"
assert_contains "$(strata cp fs:/etc - | tar -t)" "etc/new" "cp CONTAINER:PATH - writes a tar"
# cp into the container: a directory, a tar on stdin, -a.
mkdir -p "$WORK/tree/sub" && echo b > "$WORK/tree/sub/b" && chown 1234:4321 "$WORK/tree/sub/b"
strata cp -a "$WORK/tree" fs:/opt || fail "cp a directory in"
assert_eq "$(strata cp fs:/opt/sub/b - | tar -tvf - | awk '{print $2}')" "1234/4321" "-a keeps uid/gid"
(cd "$WORK" && tar -cf - new) | strata cp - fs:/tmp || fail "cp - CONTAINER:DIR"
assert_eq "$(strata cp fs:/tmp/new - | tar -xOf -)" "new file" "tar extracted in the container"
expect_fail "must be a directory" sh -c "tar -cf - -C '$WORK' new | '$STRATA' --root '$STRATA_ROOT' cp - fs:/nonexistent"

# Attacks: symlinks in the container to / and ../../.. never reach the host.
ln -s / "$upper/evil" && ln -s ../../.. "$upper/up" || fail "hostile symlinks"
marker="strata-cp-attack-$$"
on_exit "rm -f /tmp/$marker /tmp/$marker-tar /$marker"
strata cp fs:/evil/etc/passwd "$WORK/p1" && cmp -s "$WORK/p1" "$WORK/passwd" || fail "cp out through /evil must read the container's /etc/passwd"
strata cp fs:/up/up/etc/passwd "$WORK/p2" && cmp -s "$WORK/p2" "$WORK/passwd" || fail "cp out through ../../.. must read the container's /etc/passwd"
echo attack > "$WORK/$marker"
strata cp "$WORK/$marker" fs:/evil/tmp/ || fail "cp in through /evil"
strata cp "$WORK/$marker" fs:/up/up/ || fail "cp in through ../../.."
[ -e "/tmp/$marker" ] && fail "cp through a container symlink wrote the host's /tmp"
[ -e "/$marker" ] && fail "cp through a container symlink wrote the host's /"
assert_eq "$(strata cp fs:/tmp/$marker - | tar -xOf -)" "attack" "the write landed in the container's /tmp"
# A tar with ../ entries and a symlink to / followed by a file through it.
python3 - "$WORK/evil.tar" "$marker" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    ti = tarfile.TarInfo("l"); ti.type = tarfile.SYMTYPE; ti.linkname = "/"; t.addfile(ti)
    data = b"through\n"
    ti = tarfile.TarInfo("l/tmp/" + sys.argv[2] + "-tar"); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
PY
strata cp - fs:/opt < "$WORK/evil.tar" || fail "cp - of a tar with a symlink to /"
[ -e "/tmp/$marker-tar" ] && fail "a tar's symlink led cp out of the container"
assert_eq "$(strata cp fs:/opt/tmp/$marker-tar - | tar -xOf -)" "through" "the file stayed in the destination"
python3 - "$WORK/up.tar" "$marker" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    data = b"up\n"
    ti = tarfile.TarInfo("../../../../../tmp/" + sys.argv[2]); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
PY
expect_fail "leaves the destination" sh -c "'$STRATA' --root '$STRATA_ROOT' cp - fs:/opt < '$WORK/up.tar'"
[ -e "/tmp/$marker" ] && fail "a ../ tar entry escaped"
# A running container (run -d): its own writes through overlayfs; diff,
# cp and commit while it runs (cp through /proc/<Pid>/root).
strata run -d --name svc busybox sh -c 'echo x > /etc/new; echo more >> /etc/passwd; rm /bin/ls; ln -s / /evil; ln -s ../../.. /up; touch /ready; sleep 600' >/dev/null || fail "run -d"
on_exit "\"$STRATA\" --root \"$STRATA_ROOT\" rm -f svc >/dev/null 2>&1"
for _ in $(seq 100); do strata diff svc | grep -q '^A /ready$' && break; sleep 0.1; done
# (/etc/hostname, hosts and resolv.conf are the runner's files in the upper.)
assert_eq "$(strata diff svc | grep -Ev '^A /etc/(hostname|hosts|resolv.conf)$')" "C /bin
D /bin/ls
C /etc
A /etc/new
C /etc/passwd
A /evil
A /ready
A /up" "diff of a running container"
assert_eq "$(strata cp svc:/evil/up/etc/new - | tar -xOf -)" "x" "cp out of a running container, through its symlinks, inside it"
strata cp "$WORK/$marker" svc:/up/evil/tmp/ || fail "cp into a running container"
[ -e "/tmp/$marker" ] && fail "cp into a running container through its symlinks reached the host"
assert_eq "$(strata cp svc:/tmp/$marker - | tar -xOf -)" "attack" "cp into a running container"
strata commit -m live svc live:1 >/dev/null || fail "commit of a running container"
assert_eq "$(strata run --rm live:1 cat /etc/new /tmp/$marker)" "x
attack" "the committed image has the running container's files"
# commit -p (the default) freezes the container while it reads the layer and
# thaws it after: the container runs on, not paused; a container paused by
# the user stays paused (commit thaws only what it froze).
assert_eq "$(strata inspect -f '{{.State.Status}}' svc)" "running" "running after commit -p"
strata exec svc true || fail "the container answers exec after commit -p (thawed)"
strata pause svc >/dev/null || fail "pause"
strata commit svc live:2 >/dev/null || fail "commit of a paused container"
assert_eq "$(strata inspect -f '{{.State.Status}}' svc)" "paused" "a paused container stays paused through commit"
strata unpause svc >/dev/null || fail "unpause"
strata commit --pause=false svc live:3 >/dev/null || fail "commit --pause=false"
strata rm -f svc >/dev/null || fail "rm -f svc"
echo "OK"
