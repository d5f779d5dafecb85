#!/usr/bin/env bash
# Named and anonymous volumes (root, overlayfs): volume create/ls/inspect/
# rm/prune in Docker's shape, -v NAME:/path and --mount type=volume, the
# copy-up of the image's content into an empty volume (once), read-only
# volumes, the image's VOLUME entries, run --rm removing anonymous volumes,
# the in-use check, the local driver's tmpfs option, gc leaving volumes
# alone, and hostile images whose VOLUME target is a symlink out of the root.
. "$(dirname "$0")/lib.sh"

strata bootstrap busybox >/dev/null || fail "bootstrap"
VOLS=$STRATA_ROOT/volumes
anon_count() { strata volume ls -q --filter label=com.docker.volume.anonymous | wc -l; }

# --- create / ls / inspect
assert_eq "$(strata volume create data1)" "data1" "volume create prints the name"
assert_eq "$(strata volume create --name data1)" "data1" "creating an existing volume"
assert_eq "$(strata volume create --label team=a -o type=tmpfs -o device=tmpfs -o o=size=1m tmpvol)" \
  "tmpvol" "volume create with options"
gen=$(strata volume create)
[[ "$gen" =~ ^[0-9a-f]{64}$ ]] || fail "volume create without a name: '$gen'"
expect_fail "includes invalid characters for a local volume name" strata volume create 'a/b'
expect_fail "volume name is too short" strata volume create x
expect_fail 'invalid option: "bogus"' strata volume create -o bogus=1 badopt
expect_fail "conflicting options" strata volume create --name one two
out=$(strata volume ls)
assert_eq "$(echo "$out" | head -1)" "DRIVER    VOLUME NAME" "volume ls header"
assert_contains "$out" "local     data1" "volume ls row"
assert_eq "$(strata volume ls -q | LC_ALL=C sort | tr '\n' ' ')" \
  "$(printf '%s\n' "$gen" data1 tmpvol | LC_ALL=C sort | tr '\n' ' ')" "volume ls -q"
assert_eq "$(strata volume ls -q --filter label=team=a)" "tmpvol" "ls --filter label="
assert_eq "$(strata volume ls -q --filter name=^data)" "data1" "ls --filter name="
assert_eq "$(strata volume ls -q --filter dangling=false)" "" "ls --filter dangling=false"
assert_eq "$(strata volume ls --format '{{.Name}}:{{.Driver}}:{{.Scope}}:{{.Labels}}' --filter name=tmpvol)" \
  "tmpvol:local:local:team=a" "ls --format"
assert_contains "$(strata volume ls --format json --filter name=data1)" '"Name":"data1"' "ls --format json"
expect_fail "invalid filter 'bogus'" strata volume ls --filter bogus=1
insp=$(strata volume inspect data1)
assert_eq "$(echo "$insp" | head -1)" "[" "inspect prints a JSON array"
for want in '"CreatedAt": "' '"Driver": "local"' '"Labels": {}' \
  "\"Mountpoint\": \"$VOLS/data1/_data\"" '"Name": "data1"' '"Options": {}' '"Scope": "local"'; do
  assert_contains "$insp" "$want" "volume inspect"
done
assert_eq "$(strata volume inspect --format '{{.Name}} {{.Options.type}} {{index .Labels "team"}}' tmpvol)" \
  "tmpvol tmpfs a" "inspect --format"
expect_fail "No such volume: nosuch" strata volume inspect nosuch

# --- a named volume outlives its container; read-only means read-only
strata run --rm -v data1:/data busybox sh -c 'echo hello >/data/f' || fail "write into a volume"
assert_eq "$(strata run --rm -v data1:/data busybox cat /data/f)" "hello" "the next container sees it"
assert_eq "$(cat "$VOLS/data1/_data/f")" "hello" "the volume's content on the host"
strata run --rm -v data1:/data:ro busybox sh -c 'echo x >/data/g' 2>/dev/null && fail "-v NAME:/x:ro must refuse writes"
[ ! -e "$VOLS/data1/_data/g" ] || fail "a read-only volume was written"
strata run --rm --mount type=volume,source=data1,target=/m,readonly busybox sh -c 'echo x >/m/g' 2>/dev/null &&
  fail "--mount type=volume,readonly must refuse writes"
assert_eq "$(strata run --rm --mount type=volume,src=data1,dst=/m busybox cat /m/f)" "hello" "--mount type=volume"
# A missing named volume is made on first use (with Docker's null labels).
strata run --rm -v implicit1:/x busybox true || fail "run -v with a new name"
assert_eq "$(strata volume inspect --format '{{json .Labels}}' implicit1)" "null" "implicit volume labels"

# --- copy-up: an empty volume is filled from the image once
strata run --rm -v etcvol:/etc busybox true || fail "run with a volume over /etc"
assert_eq "$(cat "$VOLS/etcvol/_data/passwd")" "$(strata run --rm busybox cat /etc/passwd)" "copy-up of /etc"
assert_eq "$(stat -c '%a %u:%g' "$VOLS/etcvol/_data")" "$(strata run --rm busybox stat -c '%a %u:%g' /etc)" \
  "the volume's root takes the owner and mode of the image's directory"
strata run --rm -v etcvol:/etc busybox rm /etc/passwd || fail "rm in the volume"
strata run --rm -v etcvol:/etc busybox test -e /etc/passwd && fail "a volume with content is not filled again"
assert_eq "$(strata run --rm -v nocopy1:/etc:nocopy busybox ls -A /etc)" "" "nocopy leaves the volume empty"
assert_eq "$(strata run --rm --mount type=volume,src=nocopy2,dst=/etc,volume-nocopy busybox ls -A /etc)" "" \
  "volume-nocopy"

# --- an image with VOLUME: an anonymous volume filled from the image
C=$WORK/ctx && mkdir -p "$C"
cat >"$C/Dockerfile" <<'EOF'
FROM busybox
RUN mkdir /vol && echo seeded >/vol/seed && ln /vol/seed /vol/hard && ln -s seed /vol/soft && \
    mkfifo /vol/fifo && chown -R 1234:5678 /vol && chmod 0750 /vol && chmod 0604 /vol/seed
VOLUME /vol
EOF
strata build --progress plain -t volimg "$C" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; fail "build volimg"; }
before=$(anon_count)
assert_eq "$(strata run --name keeper volimg cat /vol/seed)" "seeded" "the image's VOLUME content"
assert_eq "$(anon_count)" "$((before + 1))" "run without --rm keeps the anonymous volume"
new=$(for v in $(strata volume ls -q --filter label=com.docker.volume.anonymous); do
  [ -e "$VOLS/$v/_data/seed" ] && echo "$v"; done | head -1)
[[ "$new" =~ ^[0-9a-f]{64}$ ]] || fail "anonymous volume name: '$new'"
d=$VOLS/$new/_data
assert_eq "$(stat -c '%a %u:%g' "$d")" "750 1234:5678" "anonymous volume root owner/mode"
assert_eq "$(stat -c '%a %u:%g %h' "$d/seed")" "604 1234:5678 2" "copied file owner/mode/links"
assert_eq "$(stat -c '%i' "$d/seed")" "$(stat -c '%i' "$d/hard")" "hard link kept"
assert_eq "$(readlink "$d/soft")" "seed" "symlink kept"
[ -p "$d/fifo" ] || fail "fifo kept"
assert_eq "$(strata volume inspect --format '{{json .Labels}}' "$new")" '{"com.docker.volume.anonymous":""}' \
  "anonymous label"
strata run --rm volimg true || fail "run --rm volimg"
strata run --rm -v /scratch busybox sh -c 'echo x >/scratch/x' || fail "run --rm -v /path"
assert_eq "$(anon_count)" "$((before + 1))" "run --rm removes the anonymous volumes it made"
assert_eq "$(strata run --rm -v data1:/vol volimg ls /vol)" "f" "a named volume over the image's VOLUME"
assert_eq "$(anon_count)" "$((before + 1))" "no anonymous volume where a mount covers VOLUME"
# The stopped container's record lists it (inspect's Mounts) and keeps it in use.
mp=$(strata inspect --format '{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.Driver}} {{.RW}}{{end}}' keeper)
assert_eq "$mp" "volume $new /vol local true" "inspect Mounts of the container"
cid=$(strata inspect --format '{{.Id}}' keeper)
expect_fail "remove $new: volume is in use - [$cid]" strata volume rm "$new"
assert_contains "$(strata volume ls -q --filter dangling=false)" "$new" "a stopped container's volume is not dangling"
strata rm -v keeper >/dev/null || fail "rm -v"
assert_eq "$(anon_count)" "$before" "rm -v removes the container's anonymous volumes"

# create / run -d: volumes resolved and filled at create, used by the monitor's container
strata create --name made -v etc2:/etc -v data1:/data busybox sh -c 'cat /data/f >/etc/seen' >/dev/null ||
  fail "create with volumes"
[ -s "$VOLS/etc2/_data/passwd" ] || fail "create fills an empty volume from the image"
strata start -a made >/dev/null || fail "start made"
assert_eq "$(cat "$VOLS/etc2/_data/seen")" "hello" "the started container wrote into its volumes"
mid=$(strata inspect --format '{{.Id}}' made)
expect_fail "remove data1: volume is in use - [$mid]" strata volume rm data1
strata rm made >/dev/null
strata run -d --name svc -v data1:/data --mount type=volume,dst=/anon busybox sh -c 'echo svc >/data/svc' >/dev/null ||
  fail "run -d with volumes"
strata wait svc >/dev/null
assert_eq "$(cat "$VOLS/data1/_data/svc")" "svc" "run -d wrote into its volume"
strata rm svc >/dev/null
rm -f "$VOLS/data1/_data/svc"
strata volume rm etc2 >/dev/null || fail "etc2 is free once its container is gone"
# run -d --rm: the container removes itself, and its anonymous volumes with it
before=$(anon_count)
strata run -d --rm -v /gone busybox true >/dev/null || fail "run -d --rm"
for _ in $(seq 100); do [ "$(anon_count)" = "$before" ] && break; sleep 0.1; done
assert_eq "$(anon_count)" "$before" "run -d --rm removes its anonymous volumes"
# --volumes-from CONTAINER[:ro|:rw]
strata create --name src1 -v data1:/data -v /anonsrc busybox true >/dev/null || fail "create src1"
assert_eq "$(strata run --rm --volumes-from src1 busybox cat /data/f)" "hello" "--volumes-from"
strata run --rm --volumes-from src1:ro busybox sh -c 'echo x >/data/z' 2>/dev/null && fail "--volumes-from :ro must refuse writes"
[ ! -e "$VOLS/data1/_data/z" ] || fail "--volumes-from :ro wrote"
strata run --name user2 --volumes-from src1 busybox sh -c 'echo from >/anonsrc/x' || fail "run --volumes-from"
assert_eq "$(strata inspect --format '{{json .HostConfig.VolumesFrom}}' user2)" '["src1"]' "HostConfig.VolumesFrom"
strata rm -v user2 >/dev/null
srcanon=$(strata inspect --format '{{range .Mounts}}{{if eq .Destination "/anonsrc"}}{{.Name}}{{end}}{{end}}' src1)
assert_eq "$(cat "$VOLS/$srcanon/_data/x")" "from" "the other container's anonymous volume, kept while src1 uses it"
strata rm -v src1 >/dev/null
[ ! -e "$VOLS/$srcanon" ] || fail "rm -v src1 removes its anonymous volume"

# --- the local driver's tmpfs option: mounted at use, nothing on the disk
out=$(strata run --rm -v tmpvol:/t busybox sh -c 'echo x >/t/x; grep " /t " /proc/mounts')
assert_contains "$out" "tmpfs" "a type=tmpfs volume is a tmpfs"
assert_contains "$out" "size=1024k" "its o= options"
assert_eq "$(ls -A "$VOLS/tmpvol/_data")" "" "a tmpfs volume leaves nothing on the disk"

# --- in use: rm refuses, prune skips; after the container ends both work
strata run --rm -v data1:/data busybox sleep 30 &
pid=$!
on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
for _ in $(seq 100); do [ -n "$(ls -A "$VOLS/data1/users" 2>/dev/null)" ] && break; sleep 0.1; done
user=$(ls "$VOLS/data1/users")
[[ "$user" =~ ^[0-9a-f]{64}$ ]] || fail "the running container's use of data1: '$user'"
expect_fail "remove data1: volume is in use - [$user]" strata volume rm data1
assert_eq "$(strata volume ls -q --filter dangling=false)" "data1" "ls --filter dangling=false"
out=$(strata volume prune -af)
[[ "$out" != *"data1"* ]] || fail "prune removed a volume in use: $out"
assert_contains "$out" "Deleted Volumes:" "prune output"
assert_contains "$out" "Total reclaimed space: " "prune output"
assert_eq "$(strata volume ls -q)" "data1" "prune -a removed every unused volume"
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null

# --- rm and prune output
strata volume create keep1 >/dev/null
strata volume create --label drop=yes drop1 >/dev/null
strata run --name anonuser -v /anon busybox true
strata rm anonuser >/dev/null # without -v: its anonymous volume stays, dangling
out=$(strata volume prune -f)
assert_eq "$(echo "$out" | head -1)" "Deleted Volumes:" "prune header"
assert_eq "$(echo "$out" | tail -1)" "Total reclaimed space: 0B" "prune total"
assert_eq "$(strata volume ls -q | LC_ALL=C sort | tr '\n' ' ')" "data1 drop1 keep1 " \
  "prune without -a removes only anonymous volumes"
out=$(strata volume prune -f --filter label=drop=yes -a)
assert_contains "$out" "drop1" "prune --filter label="
assert_eq "$(strata volume prune -f)" "Total reclaimed space: 0B" "prune with nothing to do"
assert_eq "$(strata volume rm keep1)" "keep1" "volume rm prints the name"
expect_fail "get nosuch: no such volume" strata volume rm nosuch
assert_eq "$(strata volume rm -f nosuch)" "nosuch" "volume rm -f of a missing volume"

# --- gc never touches volumes; the store stays an OCI layout
strata gc >/dev/null || fail "gc"
assert_eq "$(cat "$VOLS/data1/_data/f")" "hello" "gc left the volume alone"
[ -f "$STRATA_ROOT/oci-layout" ] && [ -f "$STRATA_ROOT/index.json" ] || fail "store layout"

# --- hostile images: VOLUME targets that are symlinks out of the root
mkdir -p "$WORK/hostdir" && echo secret >"$WORK/hostdir/secret"
H=$WORK/hostile && mkdir -p "$H"
cat >"$H/Dockerfile" <<EOF
FROM busybox
RUN ln -s ../../../../../../../../..$WORK/hostdir /up && ln -s $WORK/hostdir /abs
VOLUME /up /abs
EOF
strata build --progress plain -t hostile "$H" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; fail "build hostile"; }
before=$(anon_count)
strata run --rm hostile sh -c 'echo pwned >/up/x; echo pwned >/abs/y; ls /up /abs' >"$WORK/out" 2>&1 ||
  { cat "$WORK/out" >&2; fail "run hostile"; }
[ ! -e "$WORK/hostdir/x" ] && [ ! -e "$WORK/hostdir/y" ] || fail "a VOLUME symlink led a write out of the root"
assert_eq "$(ls "$WORK/hostdir")" "secret" "the host directory is untouched"
[[ "$(cat "$WORK/out")" != *secret* ]] || fail "the host directory was copied into a volume"
assert_eq "$(anon_count)" "$before" "run --rm removed the hostile image's volumes"
# A VOLUME that is a symlink to / is the container's root, never the host's.
cat >"$H/Dockerfile" <<'EOF'
FROM busybox
RUN ln -s / /rootlink
VOLUME /rootlink
EOF
strata build --progress plain -t hostile2 "$H" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; fail "build hostile2"; }
expect_fail "resolves to the container's root" strata run --rm hostile2 true
assert_eq "$(anon_count)" "$before" "no volume left by the refused run"

echo "volumes: all checks passed"
