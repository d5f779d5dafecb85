#!/usr/bin/env bash
# strata build end to end: every examples/Dockerfiles/* builds on the
# bootstrapped busybox base; files are checked in the unpacked image and the
# config through `strata inspect --format json`. Needs root and overlayfs
# (the ctest entry runs behind the overlay probe) and busybox-static.
. "$(dirname "$0")/lib.sh"
need python3
[ -x /bin/busybox ] || skip "needs /bin/busybox (apt-get install busybox-static)"

EX=$(cd "$(dirname "$0")/../../examples/Dockerfiles" && pwd)
strata bootstrap busybox >/dev/null || fail "bootstrap busybox"
echo s3cr3t >"$WORK/token.txt"

# cfg IMAGE PYTHON-EXPR: evaluates an expression over the image config
# (c = the "config" object, h = the history list) and prints it.
cfg() {
  strata inspect --format json "$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)[0]["Config"]
c = d.get("config", {}); h = d.get("history", [])
print(eval(sys.argv[1]))' "$2"
}
build() { strata build --progress plain "$@" >"$WORK/last.log" 2>&1 || { cat "$WORK/last.log" >&2; fail "build $*"; }; }
unpack() { rm -rf "$WORK/u/$1"; mkdir -p "$WORK/u"; strata unpack "$1" "$WORK/u/$1" || fail "unpack $1"; echo "$WORK/u/$1"; }
file_is() { [ "$(cat "$1")" = "$2" ] || fail "$1 should hold '$2', has '$(cat "$1" 2>/dev/null)'"; }

# --- basics
build -t ex/basics "$EX/basics"
r=$(unpack ex/basics)
file_is "$r/app/greeting.txt" "hello from demo
hello from the context"
file_is "$r/etc/app/app.conf" "port=8080"
[ ! -e "$r/etc/app/unused.conf" ] || fail "RUN rm should remove unused.conf"
[ -f "$r/var/log/app/started" ] || fail "exec-form RUN"
[ ! -e "$r/etc/hosts" ] && [ ! -e "$r/etc/resolv.conf" ] || fail "runner mount stubs leaked into the image"
assert_eq "$(cfg ex/basics 'c["WorkingDir"]')" "/app" "WorkingDir"
assert_eq "$(cfg ex/basics 'c["Cmd"]')" "['cat', '/app/greeting.txt']" "Cmd"
assert_eq "$(cfg ex/basics '[e for e in c["Env"] if not e.startswith("PATH=")]')" "['APP_HOME=/app', 'MODE=demo']" "Env"
assert_eq "$(cfg ex/basics 'c["Labels"]["org.example.greeting"]')" "hello" "LABEL expands ARG"
assert_eq "$(cfg ex/basics '[x["created_by"] for x in h if "ENV" in x["created_by"]][0]')" "ENV APP_HOME=/app MODE=demo"
assert_eq "$(cfg ex/basics '[x.get("empty_layer", False) for x in h if x["created_by"].startswith("ENV")][0]')" "True"
assert_eq "$(cfg ex/basics '[x["created_by"] for x in h if x["created_by"].startswith("COPY hello")][0]')" "COPY hello.txt ./ # buildkit"
assert_eq "$(cfg ex/basics '[x["created_by"] for x in h if "rm -f" in x["created_by"]][0]')" \
  "RUN |1 GREETING=hello /bin/sh -c rm -f /etc/app/unused.conf # buildkit"
# Every history entry without empty_layer has a layer.
assert_eq "$(cfg ex/basics 'len([x for x in h if not x.get("empty_layer")]) == len(d["rootfs"]["diff_ids"])')" "True" "history/layers"

# A rebuild with nothing changed runs nothing and gives the same image.
id1=$(cfg ex/basics 'd["created"]')
build -t ex/basics "$EX/basics"
assert_contains "$(cat "$WORK/last.log")" "(0 steps run" "no-change rebuild runs nothing"
assert_eq "$(cfg ex/basics 'd["created"]')" "$id1" "no-change rebuild keeps the config"

# Changing one context file reruns the COPY that reads it and what follows.
cp -a "$EX/basics" "$WORK/basics"
echo "changed" >"$WORK/basics/conf/app.conf"
build -t ex/basics2 "$WORK/basics"
log=$(cat "$WORK/last.log")
assert_contains "$log" "COPY hello.txt ./
#3 CACHED" "COPY of an unchanged file stays cached"
assert_contains "$log" "the files it reads changed" "the miss says why"
assert_contains "$log" "(4 steps run, 2 cached" "only the COPY of conf/ and the steps after it rerun"
# Touching a file without changing it keeps the cache (content hash).
touch "$WORK/basics/hello.txt"
build -t ex/basics2 "$WORK/basics"
assert_contains "$(cat "$WORK/last.log")" "(0 steps run" "mtime-only change keeps the cache"
build --no-cache -t ex/basics3 "$WORK/basics"
assert_contains "$(cat "$WORK/last.log")" "running: --no-cache" "--no-cache"

# --- multi-stage: parallel stages, only what the target needs.
build -t ex/multi "$EX/multistage"
assert_contains "$(cat "$WORK/last.log")" "[build-b 2/3] WORKDIR /work" "stage names in progress"
if grep -q "never built" "$WORK/last.log"; then fail "the unused stage must not be built"; fi
r=$(unpack ex/multi)
file_is "$r/opt/a.txt" "artifact a"
file_is "$r/opt/b/b.txt" "artifact b"
[ "$(readlink "$r/opt/b/b-link")" = b.txt ] || fail "COPY --from keeps symlinks inside directories"
assert_eq "$(cfg ex/multi 'c["Entrypoint"], c["Cmd"]')" "(['/bin/cat'], ['/opt/a.txt'])"
build --target build-a -t ex/multi-a "$EX/multistage"
[ -f "$(unpack ex/multi-a)/out/a.txt" ] || fail "--target build-a"
strata build --progress plain --target unused -t ex/unused "$EX/multistage" >"$WORK/fail.log" 2>&1 && fail "RUN exit 1 must fail"
assert_contains "$(cat "$WORK/fail.log")" "Dockerfile:11" "the error names the Dockerfile line"
assert_contains "$(cat "$WORK/fail.log")" "did not complete successfully: exit code: 1" "exit code"
assert_contains "$(cat "$WORK/fail.log")" "never built for the default target" "the full output of the failing step"
expect_fail "no such image" strata inspect ex/unused

# --- heredocs
build -t ex/heredoc "$EX/heredoc"
r=$(unpack ex/heredoc)
file_is "$r/srv/script.txt" "script ran"
file_is "$r/srv/inline.txt" "inline world"
file_is "$r/srv/copied.txt" "hello world"
file_is "$r/srv/literal.txt" 'kept as written: ${NAME}'
build --build-arg NAME=strata -t ex/heredoc "$EX/heredoc"
file_is "$(unpack ex/heredoc)/srv/copied.txt" "hello strata"

# --- RUN --mount: cache survives between builds, not in the image
build -t ex/cache "$EX/cache-mount"
r=$(unpack ex/cache)
file_is "$r/runs-seen" "1"
file_is "$r/tmpfs-worked" "temp"
file_is "$r/from-bind.txt" "bound from the context"
[ ! -e "$r/var/cache/demo" ] && [ ! -e "$r/scratch" ] && [ ! -e "$r/mnt" ] || fail "mount targets leaked into the image"
build --no-cache -t ex/cache "$EX/cache-mount"
file_is "$(unpack ex/cache)/runs-seen" "2"

# --- ONBUILD
build -t ex/onbuild "$EX/onbuild"
r=$(unpack ex/onbuild)
[ -f "$r/onbuild/trigger.txt" ] && [ -f "$r/onbuild/ran.txt" ] || fail "ONBUILD triggers ran"
assert_eq "$(cfg ex/onbuild 'c.get("OnBuild")')" "None" "triggers are not inherited"
build --target base -t ex/onbuild-base "$EX/onbuild"
assert_eq "$(cfg ex/onbuild-base 'c["OnBuild"]')" "['COPY trigger.txt /onbuild/', 'RUN echo \"trigger ran\" > /onbuild/ran.txt']"
# A later build FROM the stored image runs its triggers.
mkdir -p "$WORK/child" && echo "child trigger" >"$WORK/child/trigger.txt"
printf 'FROM ex/onbuild-base\n' >"$WORK/child/Dockerfile"
build -t ex/onbuild-child "$WORK/child"
file_is "$(unpack ex/onbuild-child)/onbuild/trigger.txt" "child trigger"

# --- ADD of a local tar
build -t ex/addtar "$EX/add-tar"
r=$(unpack ex/addtar)
[ -x "$r/opt/bundle/bin/tool" ] || fail "ADD extracts the archive"
file_is "$r/opt/bundle/share/README" "doc"
[ -f "$r/opt/raw/bundle.tar.gz" ] || fail "COPY keeps the archive as is"

# --- USER / WORKDIR / --chown / --chmod
build -t ex/user "$EX/user-workdir"
r=$(unpack ex/user)
file_is "$r/home/app/data/uid.txt" "1234"
file_is "$r/perm.txt" "1234:1234 644
0:0 600"
assert_eq "$(stat -c %u:%g "$r/home/app/data")" "1234:1234" "WORKDIR creates the directory as USER"
assert_eq "$(cfg ex/user 'c["User"], c["WorkingDir"]')" "('1234', '/home/app/data')"

# --- COPY rules
build -t ex/copy "$EX/copy-rules"
r=$(unpack ex/copy)
assert_eq "$(cd "$r/dst" && find . | LC_ALL=C sort | tr '\n' ' ')" \
  ". ./dir ./dir/sub ./dir/sub/file.dat ./dir/top.txt ./link ./logs ./logs/keep.txt ./renamed.dat ./txt ./txt/a.txt ./txt/b.txt " \
  "wildcards, directory contents, .dockerignore, --exclude"
[ -f "$r/dst/link" ] && [ ! -L "$r/dst/link" ] || fail "a symlink source is followed"
mkdir -p "$WORK/missing" && printf 'FROM busybox\nCOPY nothere.txt /\n' >"$WORK/missing/Dockerfile"
expect_fail "nothere.txt" strata build --progress plain "$WORK/missing"
mkdir -p "$WORK/escape" && ln -s /etc/passwd "$WORK/escape/pw" && printf 'FROM busybox\nCOPY pw /pw\n' >"$WORK/escape/Dockerfile"
# A symlink that leaves the context resolves inside it (here: to nothing).
if strata build --progress quiet -t ex/escape "$WORK/escape" >/dev/null 2>&1; then
  cmp -s "$(unpack ex/escape)/pw" /etc/passwd && fail "a symlink escaping the context must not copy the host's file"
fi

# --- metadata instructions
build -t ex/meta "$EX/metadata"
assert_eq "$(cfg ex/meta 'sorted(c["ExposedPorts"])')" "['443/tcp', '5353/udp', '80/tcp']"
assert_eq "$(cfg ex/meta 'sorted(c["Volumes"])')" "['/data', '/logs']"
assert_eq "$(cfg ex/meta 'c["StopSignal"], c["Shell"], d["author"]')" "('SIGINT', ['/bin/sh', '-ec'], 'strata examples')"
assert_eq "$(cfg ex/meta 'c["Healthcheck"]["Test"], c["Healthcheck"]["Retries"]')" "(['CMD-SHELL', 'test -f /shell.txt'], 3)"
assert_eq "$(cfg ex/meta 'c["Entrypoint"], c.get("Cmd")')" "(['/bin/echo'], None)" "ENTRYPOINT resets the inherited CMD"
assert_eq "$(cfg ex/meta '[x["created_by"] for x in h if x["created_by"].startswith("RUN")][0]')" \
  'RUN /bin/sh -ec echo "shell is -ec" > /shell.txt # buildkit' "SHELL is used by RUN"

# --- secrets
expect_fail "secret token is required" strata build --progress plain "$EX/secret"
build --secret id=token,src="$WORK/token.txt" -t ex/secret "$EX/secret"
r=$(unpack ex/secret)
file_is "$r/secret-was-readable" "ok"
[ ! -e "$r/run/secrets" ] || fail "the secret mount point leaked"
if grep -rq s3cr3t "$r"; then fail "the secret reached the image"; fi

# --- FROM scratch, missing base
mkdir -p "$WORK/scratch" && echo hi >"$WORK/scratch/hi.txt"
printf 'FROM scratch\nCOPY hi.txt /\nCMD ["/hi"]\n' >"$WORK/scratch/Dockerfile"
build -t ex/scratch "$WORK/scratch"
file_is "$(unpack ex/scratch)/hi.txt" "hi"
assert_eq "$(cfg ex/scratch 'c["Env"], c["WorkingDir"]')" "(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], '/')"
printf 'FROM scratch\nLABEL a=b\n' >"$WORK/scratch/Dockerfile.empty"
build -f "$WORK/scratch/Dockerfile.empty" -t ex/empty "$WORK/scratch"
assert_eq "$(cfg ex/empty 'len(d["rootfs"]["diff_ids"])')" "0" "an empty FROM scratch image"
printf 'FROM nosuch/image:1\n' >"$WORK/scratch/Dockerfile.missing"
expect_fail "FROM nosuch/image:1: no such image" strata build -f "$WORK/scratch/Dockerfile.missing" "$WORK/scratch"

# --- outputs
build -t ex/basics -o type=oci,dest="$WORK/out-oci",tar=false -o type=docker-archive,dest="$WORK/out.tar" \
  -o type=tar,dest="$WORK/rootfs.tar" -o type=local,dest="$WORK/out-local" "$EX/basics"
[ -f "$WORK/out-oci/index.json" ] && [ -f "$WORK/out-oci/oci-layout" ] || fail "type=oci writes a layout"
tar tf "$WORK/out.tar" | grep -q manifest.json || fail "type=docker-archive has manifest.json"
tar tf "$WORK/rootfs.tar" | grep -q '^app/greeting.txt$' || fail "type=tar is the root filesystem"
file_is "$WORK/out-local/app/greeting.txt" "hello from demo
hello from the context"
# --- COPY --link: changing the base stage keeps the --link layers (same blobs)
build -t ex/link "$EX/link"
r=$(unpack ex/link)
file_is "$r/srv/summary.txt" "1.4.2
mode=linked"
assert_eq "$(stat -c '%u:%g %a' "$r/etc/app/app.conf")" "65534:65534 644" "COPY --link --chown"
[ -x "$r/opt/app/run.sh" ] && [ -f "$r/srv/base.txt" ] || fail "COPY --link merges over the base"
cp -a "$EX/link" "$WORK/link"
sed -i 's/base layer/changed base/' "$WORK/link/Dockerfile"
build -t ex/link2 "$WORK/link"
layers_of() { strata inspect --format json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Manifest"]["layers"][-3]["digest"])'; }
assert_eq "$(layers_of ex/link2)" "$(layers_of ex/link)" "the first --link layer is reused after a base change"
python3 - "$WORK/last.log" <<'PY' || fail "COPY --link must be CACHED after a base change"
import re, sys
log = open(sys.argv[1]).read()
i = re.search(r"^#(\d+) \[\S+ \d+/\d+\] COPY --link app/ /opt/app/$", log, re.M).group(1)
assert re.search(rf"^#{i} CACHED$", log, re.M), log
PY

# --- symbolic --chmod
build -t ex/chmod "$EX/chmod"
r=$(unpack ex/chmod)
assert_eq "$(stat -c %a "$r/usr/local/bin/hello") $(stat -c %a "$r/usr/local/bin/tool")" "744 755" "u+x,g-w"
assert_eq "$(stat -c %a "$r/usr/share/demo/notes.txt") $(stat -c %a "$r/usr/share/demo/sub") $(stat -c %a "$r/usr/share/demo/sub/run")" \
  "444 555 555" "a=rX"
assert_eq "$(stat -c %a "$r/etc/demo/notes.txt") $(stat -c %a "$r/root/notes.txt")" "640 600" "octal and ADD --chmod"

# --- ADD of bzip2 and xz archives
build -t ex/archives "$EX/add-archives"
r=$(unpack ex/archives)
for k in bz2 xz; do
  file_is "$r/srv/$k/site/index.html" "<h1>hi</h1>"
  [ "$(readlink "$r/srv/$k/site/home.html")" = index.html ] || fail "ADD $k: symlink"
done
cmp -s "$r/srv/raw/readme.txt.bz2" "$EX/add-archives/readme.txt.bz2" || fail "a bzip2 file that is not a tar is copied"
cmp -s "$r/srv/copied/site.tar.xz" "$EX/add-archives/site.tar.xz" || fail "COPY does not extract"

echo "ok"
