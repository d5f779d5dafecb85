#!/usr/bin/env bash
# strata build: COPY --link, symbolic --chmod, ADD of bzip2/xz/gzip archives
# (and hostile ones), ADD of http(s) URLs from a loopback server (file name,
# Last-Modified, --checksum, no extraction, trailing-slash rules), ADD of git
# repositories, RUN --mount=type=ssh with a fake agent, and --progress tty
# under a pseudo-terminal. Needs root and overlayfs (overlay probe),
# busybox-static and python3.
. "$(dirname "$0")/lib.sh"
need python3
[ -x /bin/busybox ] || skip "needs /bin/busybox (apt-get install busybox-static)"
strata bootstrap busybox >/dev/null || fail "bootstrap busybox"

build() { strata build --progress plain "$@" >"$WORK/last.log" 2>&1 || { cat "$WORK/last.log" >&2; fail "build $*"; }; }
unpack() { rm -rf "$WORK/u/$1"; mkdir -p "$WORK/u"; strata unpack "$1" "$WORK/u/$1" >/dev/null || fail "unpack $1"; echo "$WORK/u/$1"; }
mode_of() { stat -c %a "$1"; }
layers() { strata inspect --format json "$1" | python3 -c 'import json,sys; print(" ".join(l["digest"] for l in json.load(sys.stdin)[0]["Manifest"]["layers"]))'; }

# ---------------------------------------------------------------- COPY --link
C=$WORK/link; mkdir -p "$C/src/sub"
echo one >"$C/src/a.txt"; echo two >"$C/src/sub/b.txt"; chmod 0640 "$C/src/a.txt"
echo base-1 >"$C/base.txt"
cat >"$C/Dockerfile" <<'DF'
FROM busybox:latest AS base
COPY base.txt /base.txt
RUN mkdir -p /opt && echo kept >/opt/from-base
FROM base
COPY --link src/ /opt/app/
COPY --link --chown=nobody:nogroup src/a.txt /srv/owned/
COPY src/a.txt /plain/
DF
build -t feat/link "$C"
r=$(unpack feat/link)
[ "$(cat "$r/opt/app/a.txt")" = one ] && [ "$(cat "$r/opt/app/sub/b.txt")" = two ] || fail "COPY --link content"
[ "$(cat "$r/opt/from-base")" = kept ] || fail "COPY --link must keep the parent's files in the merged tree"
assert_eq "$(mode_of "$r/opt/app/a.txt")" 640 "COPY --link keeps modes"
assert_eq "$(stat -c %u:%g "$r/srv/owned/a.txt")" "65534:65534" "--link --chown resolved in the parent's /etc/passwd"
assert_eq "$(mode_of "$r/opt/app")" 755 "--link creates missing destination directories"
link_layer=$(layers feat/link | awk '{print $(NF-2)}')
# The --link layer holds only what it copied (and the directories above it).
link_blob=$STRATA_ROOT/blobs/sha256/${link_layer#sha256:}
[ -f "$link_blob" ] || fail "COPY --link: no blob $link_blob"
link_list=$( (zstd -dcq "$link_blob" 2>/dev/null || gzip -dc "$link_blob" 2>/dev/null || cat "$link_blob") |
  tar -t | sed 's|^\./||; s|/$||' | grep -v '^$' | sort)
for want in opt/app/a.txt opt/app/sub/b.txt; do
  grep -qx "$want" <<<"$link_list" || fail "the COPY --link layer lacks $want: $link_list"
done
if extra=$(grep -vxE 'opt|opt/app|opt/app/a\.txt|opt/app/sub|opt/app/sub/b\.txt' <<<"$link_list"); then
  fail "the COPY --link layer holds more than it copied: $extra"
fi
# Changing the base stage: the --link steps stay cached with the same blob,
# the plain COPY after them runs again.
echo base-2 >"$C/base.txt"
build -t feat/link2 "$C"
log=$(cat "$WORK/last.log")
assert_contains "$log" "COPY --link src/ /opt/app/
#" "link step shown"
python3 - "$WORK/last.log" <<'PY' || fail "COPY --link must be CACHED after a base change: $(cat "$WORK/last.log")"
import re, sys
log = open(sys.argv[1]).read()
ids = {m.group(2): m.group(1) for m in re.finditer(r"^#(\d+) \[\S+ \d+/\d+\] (.*)$", log, re.M)}
def status(text):
    i = ids[text]
    return "CACHED" if re.search(rf"^#{i} CACHED$", log, re.M) else "RUN"
assert status("COPY base.txt /base.txt") == "RUN"
assert status("COPY --link src/ /opt/app/") == "CACHED", "link 1"
assert status("COPY --link --chown=nobody:nogroup src/a.txt /srv/owned/") == "CACHED", "link 2"
assert status("COPY src/a.txt /plain/") == "RUN", "plain copy reruns"
PY
assert_eq "$(layers feat/link2 | awk '{print $(NF-2)}')" "$link_layer" "the --link layer blob is reused as is"
r2=$(unpack feat/link2)
[ "$(cat "$r2/base.txt")" = base-2 ] && [ "$(cat "$r2/opt/app/sub/b.txt")" = two ] || fail "merged tree after a base change"
# Without --link the same copy gives the same files (common case).
sed 's/--link //' "$C/Dockerfile" >"$C/Dockerfile.nolink"
build -t feat/nolink -f "$C/Dockerfile.nolink" "$C"
r3=$(unpack feat/nolink)
assert_eq "$(tree_dump "$r3/opt/app")" "$(tree_dump "$r2/opt/app")" "--link and plain COPY give the same tree"
# --link over a symlinked directory in the parent: the layer's directory
# replaces the link (BuildKit's documented --link difference).
cat >"$C/Dockerfile.sym" <<'DF'
FROM busybox:latest
RUN mkdir /real && ln -s /real /alias
COPY --link src/a.txt /alias/
DF
build -t feat/linksym -f "$C/Dockerfile.sym" "$C"
r4=$(unpack feat/linksym)
[ -d "$r4/alias" ] && [ ! -L "$r4/alias" ] && [ -f "$r4/alias/a.txt" ] && [ ! -e "$r4/real/a.txt" ] ||
  fail "COPY --link onto a symlinked directory: the layer's directory wins"

# ---------------------------------------------------------- symbolic --chmod
C=$WORK/chmod; mkdir -p "$C/d"
echo x >"$C/plain"; chmod 0644 "$C/plain"
printf '#!/bin/sh\necho hi\n' >"$C/tool"; chmod 0744 "$C/tool"
echo y >"$C/d/f"; chmod 0600 "$C/d/f"; chmod 0700 "$C/d"
cat >"$C/Dockerfile" <<'DF'
FROM busybox:latest
COPY --chmod=u+x,g-w plain tool /a/
COPY --chmod=a=rX plain tool /b/
COPY --chmod=go+rX d /c/
COPY --chmod=0750 plain /d/plain
ADD --chmod=o-r,u+x plain /e/
COPY --chmod=+x <<EOT /f/script
echo heredoc
EOT
DF
build -t feat/chmod "$C"
r=$(unpack feat/chmod)
assert_eq "$(mode_of "$r/a/plain") $(mode_of "$r/a/tool")" "744 744" "u+x,g-w"
assert_eq "$(mode_of "$r/b/plain") $(mode_of "$r/b/tool")" "444 555" "a=rX (X only for already executable files)"
assert_eq "$(mode_of "$r/c") $(mode_of "$r/c/f")" "755 644" "go+rX on a directory and its file"
assert_eq "$(mode_of "$r/d/plain")" 750 "octal"
assert_eq "$(mode_of "$r/e/plain")" 740 "ADD --chmod symbolic"
assert_eq "$(mode_of "$r/f/script")" 755 "heredoc +x"
printf 'FROM busybox:latest\nCOPY --chmod=u+q plain /x/\n' >"$C/Dockerfile.bad"
expect_fail 'chmod' strata build --progress plain -f "$C/Dockerfile.bad" "$C"

# ------------------------------------------------------------ ADD archives
C=$WORK/arch; mkdir -p "$C/t/dir"
echo in-archive >"$C/t/dir/file"; ln -s file "$C/t/dir/link"
tar -C "$C/t" -cf "$C/plain.tar" dir
gzip -c "$C/plain.tar" >"$C/a.tar.gz"
bzip2 -c "$C/plain.tar" >"$C/a.tar.bz2"
xz -c "$C/plain.tar" >"$C/a.tar.xz"
zstd -q -c "$C/plain.tar" >"$C/a.tar.zst"
echo "not an archive" | bzip2 -c >"$C/text.bz2"
printf 'BZh9 but not bzip2 at all' >"$C/fake.bz2"
python3 - "$C/evil.tar.xz" <<'PY'
import io, lzma, sys, tarfile
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    def add(name, data=b"x", **kw):
        i = tarfile.TarInfo(name); i.size = len(data)
        for k, v in kw.items(): setattr(i, k, v)
        t.addfile(i, io.BytesIO(data) if i.type == tarfile.REGTYPE else None)
    add("../../escape-dotdot")
    add("up", type=tarfile.SYMTYPE, linkname="../../../../..")
    add("up/escape-symlink")
    add("abs", type=tarfile.SYMTYPE, linkname="/etc")
    add("abs/escape-abs")
    add("ok")
open(sys.argv[1], "wb").write(lzma.compress(buf.getvalue()))
PY
cat >"$C/Dockerfile" <<'DF'
FROM busybox:latest
ADD plain.tar /x/tar/
ADD a.tar.gz /x/gz/
ADD a.tar.bz2 /x/bz2/
ADD a.tar.xz /x/xz/
ADD a.tar.zst /x/zst/
ADD text.bz2 fake.bz2 /x/raw/
COPY a.tar.xz /x/copied/
ADD evil.tar.xz /x/evil/
DF
out=$(strata build --progress plain -t feat/arch "$C" 2>&1)
if [ $? -eq 0 ]; then
  r=$(unpack feat/arch)
  for k in tar gz bz2 xz zst; do
    [ "$(cat "$r/x/$k/dir/file")" = in-archive ] || fail "ADD extracts the $k archive"
    [ "$(readlink "$r/x/$k/dir/link")" = file ] || fail "ADD $k keeps symlinks"
  done
  cmp -s "$r/x/raw/text.bz2" "$C/text.bz2" && cmp -s "$r/x/raw/fake.bz2" "$C/fake.bz2" ||
    fail "compressed non-tar files are copied as they are"
  cmp -s "$r/x/copied/a.tar.xz" "$C/a.tar.xz" || fail "COPY never extracts"
  [ -f "$r/x/evil/ok" ] || fail "hostile archive: the harmless entry"
  [ ! -e "$r/escape-dotdot" ] && [ ! -e "$r/x/escape-dotdot" ] && [ ! -e "$r/escape-symlink" ] &&
    [ ! -e "$r/etc/escape-abs" ] || fail "a hostile archive wrote outside its destination"
else
  # Refusing the hostile archive is fine too, if it names the entry.
  assert_contains "$out" "evil.tar.xz" "hostile archive error names the archive"
  sed -i '/evil/d' "$C/Dockerfile"
  build -t feat/arch "$C"
  r=$(unpack feat/arch)
  for k in tar gz bz2 xz zst; do
    [ "$(cat "$r/x/$k/dir/file")" = in-archive ] || fail "ADD extracts the $k archive"
  done
fi
find / -xdev -name 'escape-*' -newer "$C/Dockerfile" 2>/dev/null | grep -q . && fail "hostile archive escaped onto the host"

# ------------------------------------------------------------- ADD from URLs
C=$WORK/url; mkdir -p "$C/www/dir"
echo "remote content" >"$C/www/file.txt"
cp "$WORK/arch/a.tar.gz" "$C/www/remote.tar.gz"
touch -d '2021-03-04 05:06:07 UTC' "$C/www/file.txt"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$C/www" && exec python3 -m http.server --bind 127.0.0.1 "$port" >"$WORK/http.log" 2>&1) &
http_pid=$!
on_exit "kill $http_pid"
for _ in $(seq 50); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null && break; sleep 0.1; done
U=http://127.0.0.1:$port
sum=$(sha256sum "$C/www/file.txt" | cut -d' ' -f1)
cat >"$C/Dockerfile" <<DF
FROM busybox:latest
ADD $U/file.txt /dl/
ADD $U/file.txt /named.txt
ADD --checksum=sha256:$sum $U/file.txt?x=1 /sum/
ADD $U/remote.tar.gz /archive/
ADD --chmod=0644 $U/file.txt /mode/
DF
build -t feat/url "$C"
r=$(unpack feat/url)
[ "$(cat "$r/dl/file.txt")" = "remote content" ] || fail "ADD URL into a directory takes the URL's file name"
[ "$(cat "$r/named.txt")" = "remote content" ] || fail "ADD URL to a file path"
[ -f "$r/sum/file.txt" ] || fail "file name without the query"
assert_eq "$(stat -c %Y "$r/dl/file.txt")" "$(date -d '2021-03-04 05:06:07 UTC' +%s)" "mtime from Last-Modified"
assert_eq "$(mode_of "$r/dl/file.txt")" 600 "downloaded files are 0600 as Docker's"
assert_eq "$(mode_of "$r/mode/file.txt")" 644 "--chmod on a URL"
cmp -s "$r/archive/remote.tar.gz" "$C/www/remote.tar.gz" || fail "remote archives are not extracted"
bad=0000000000000000000000000000000000000000000000000000000000000000
printf 'FROM busybox:latest\nADD --checksum=sha256:%s %s/file.txt /x/\n' "$bad" "$U" >"$C/Dockerfile.bad"
out=$(strata build --progress plain -f "$C/Dockerfile.bad" "$C" 2>&1) && fail "checksum mismatch must fail"
assert_contains "$out" "$U/file.txt" "mismatch names the URL"
assert_contains "$out" "sha256:$bad" "mismatch names the expected digest"
assert_contains "$out" "sha256:$sum" "mismatch names the actual digest"
# sha384 and sha512 checksums (BuildKit accepts all three).
sum384=$(sha384sum "$C/www/file.txt" | cut -d' ' -f1)
sum512=$(sha512sum "$C/www/file.txt" | cut -d' ' -f1)
printf 'FROM busybox:latest\nADD --checksum=sha384:%s %s/file.txt /s384/\nADD --checksum=sha512:%s %s/file.txt /s512/\n' \
  "$sum384" "$U" "$sum512" "$U" >"$C/Dockerfile.sha"
build -t feat/sha -f "$C/Dockerfile.sha" "$C"
r=$(unpack feat/sha)
[ "$(cat "$r/s384/file.txt")" = "remote content" ] && [ "$(cat "$r/s512/file.txt")" = "remote content" ] ||
  fail "ADD --checksum=sha384/sha512 downloads"
for alg in sha384 sha512; do
  want=$(printf '%s' "$bad$bad" | cut -c1-$([ $alg = sha384 ] && echo 96 || echo 128))
  got=$([ $alg = sha384 ] && echo "$sum384" || echo "$sum512")
  printf 'FROM busybox:latest\nADD --checksum=%s:%s %s/file.txt /x/\n' $alg "$want" "$U" >"$C/Dockerfile.bad"
  out=$(strata build --progress plain -f "$C/Dockerfile.bad" "$C" 2>&1) && fail "$alg checksum mismatch must fail"
  assert_contains "$out" "ADD $U/file.txt: digest mismatch: expected $alg:$want, got $alg:$got" "$alg mismatch names URL and digests"
done
printf 'FROM busybox:latest\nADD %s/missing.txt /x/\n' "$U" >"$C/Dockerfile.404"
expect_fail "$U/missing.txt" strata build --progress plain -f "$C/Dockerfile.404" "$C"

# ------------------------------------------------------------- ADD from git
if command -v git >/dev/null; then
  G=$C/www/repo.git; mkdir -p "$WORK/gitsrc"
  (cd "$WORK/gitsrc" && git init -q -b main && mkdir sub && echo v1 >sub/f && echo top >top &&
   git add . && git -c user.name=t -c user.email=t@e commit -qm one && git tag v1 &&
   echo v2 >sub/f && git -c user.name=t -c user.email=t@e commit -qam two) || fail "git setup"
  git clone -q --bare "$WORK/gitsrc" "$G" && git -C "$G" update-server-info || fail "bare repo"
  cat >"$C/Dockerfile.git" <<DF
FROM busybox:latest
ADD $U/repo.git /src/head/
ADD $U/repo.git#v1 /src/v1/
ADD $U/repo.git#main:sub /src/sub/
ADD --keep-git-dir $U/repo.git /src/keep/
DF
  build -t feat/git -f "$C/Dockerfile.git" "$C"
  r=$(unpack feat/git)
  [ "$(cat "$r/src/head/sub/f")" = v2 ] && [ "$(cat "$r/src/v1/sub/f")" = v1 ] &&
    [ "$(cat "$r/src/sub/f")" = v2 ] && [ ! -e "$r/src/head/.git" ] && [ -d "$r/src/keep/.git" ] ||
    fail "ADD git: refs, subdir, .git kept only with --keep-git-dir"
  printf 'FROM busybox:latest\nADD %s/repo.git#nope /x/\n' "$U" >"$C/Dockerfile.gitbad"
  expect_fail '"nope"' strata build --progress plain -f "$C/Dockerfile.gitbad" "$C"
fi
printf 'FROM busybox:latest\nADD git@example.invalid:a/b.git /x/\n' >"$C/Dockerfile.gitssh"
expect_fail "git@example.invalid:a/b.git" strata build --progress plain -f "$C/Dockerfile.gitssh" "$C"

# ---------------------------------------------------------- RUN --mount=type=ssh
C=$WORK/ssh; mkdir -p "$C"
python3 - "$WORK/agent.sock" >"$WORK/agent.log" 2>&1 <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(4)
while True:
    c, _ = s.accept()
    data = c.recv(100)
    c.sendall(b"agent-reply:" + data)
    c.close()
PY
agent_pid=$!
on_exit "kill $agent_pid"
for _ in $(seq 50); do [ -S "$WORK/agent.sock" ] && break; sleep 0.1; done
# busybox's nc has no unix sockets: a static client, built here, talks to the agent.
need cc "gcc libc6-dev"
cat >"$C/client.c" <<'CC'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(void) {
    const char* p = getenv("SSH_AUTH_SOCK");
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (!p) return 2;
    strncpy(a.sun_path, p, sizeof a.sun_path - 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr*)&a, sizeof a) != 0) { perror("connect"); return 1; }
    if (write(fd, "ping", 4) != 4) return 1;
    char buf[128]; ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return 1;
    fwrite(buf, 1, (size_t)n, stdout);
    return 0;
}
CC
cc -static -O1 -o "$C/client" "$C/client.c" || fail "building the static agent client"
cat >"$C/Dockerfile" <<'DF'
FROM busybox:latest
COPY client /usr/local/bin/agent-client
RUN --mount=type=ssh test -S "$SSH_AUTH_SOCK" && echo "$SSH_AUTH_SOCK" >/sock-path && stat -c %a "$SSH_AUTH_SOCK" >/sock-mode && agent-client >/reply
RUN --mount=type=ssh,id=other,target=/tmp/agent,mode=0666 stat -c %a /tmp/agent >/other-mode
DF
build -t feat/ssh --ssh default="$WORK/agent.sock" --ssh other="$WORK/agent.sock" "$C"
r=$(unpack feat/ssh)
assert_eq "$(cat "$r/sock-path")" /run/buildkit/ssh_agent.0 "default target and SSH_AUTH_SOCK"
assert_eq "$(cat "$r/sock-mode")" 600 "agent socket mode"
assert_eq "$(cat "$r/other-mode")" 666 "mode= on the ssh mount"
assert_contains "$(cat "$r/reply")" "agent-reply:ping" "the step talks to the agent"
[ ! -e "$r/run/buildkit" ] || fail "the ssh mount point must not end up in the image"
printf 'FROM busybox:latest\nRUN --mount=type=ssh,required=true true\n' >"$C/Dockerfile.req"
expect_fail 'ssh agent "default" is required' env -u SSH_AUTH_SOCK "$STRATA" build --progress plain -f "$C/Dockerfile.req" "$C"
printf 'FROM busybox:latest\nRUN --mount=type=ssh test ! -e /run/buildkit/ssh_agent.0\n' >"$C/Dockerfile.opt"
build -f "$C/Dockerfile.opt" "$C"
expect_fail "not an ssh agent socket" strata build --ssh default="$C/Dockerfile" "$C"
expect_fail "SSH_AUTH_SOCK is not set" env -u SSH_AUTH_SOCK "$STRATA" build --ssh default "$C"

# ----------------------------------------------------------- --progress tty
C=$WORK/tty; mkdir -p "$C"
head -c 3000000 /dev/urandom >"$C/big"
cat >"$C/Dockerfile" <<'DF'
FROM busybox:latest
RUN for i in 1 2 3 4 5 6 7 8; do echo "line $i"; done
COPY big /big
DF
# in_pty ARGS...: strata with stderr on a pseudo-terminal; prints what it
# wrote and exits with its status.
in_pty() {
  python3 - "$STRATA" "$@" <<'PY'
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = bytearray()
while True:
    try:
        b = os.read(fd, 65536)
    except OSError:
        break
    if not b:
        break
    out += b
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(os.waitstatus_to_exitcode(st))
PY
}
in_pty build --no-cache --progress tty -t feat/tty "$C" >"$WORK/tty.out" || fail "tty build: $(cat "$WORK/tty.out")"
t=$(cat "$WORK/tty.out")
assert_contains "$t" "[2/3] RUN for i in" "tty: step line"
assert_contains "$t" "line 8" "tty: the running step's output"
assert_contains "$t" "packing layer" "tty: layer bytes while packing"
assert_contains "$t" "[+] Building" "tty: live status line"
assert_contains "$t" "writing image sha256:" "tty: final summary"
assert_contains "$t" $'\x1b[2K' "tty: lines are redrawn in place"
# A failing RUN prints its whole output in tty mode too.
printf 'FROM busybox:latest\nRUN for i in $(seq 1 40); do echo out-$i; done; exit 3\n' >"$C/Dockerfile.fail"
out=$(in_pty build --progress tty -f "$C/Dockerfile.fail" "$C") && fail "the failing RUN must fail"
for i in 1 20 40; do assert_contains "$out" "out-$i" "failing RUN output line $i"; done
assert_contains "$out" "exit code: 3" "failing RUN exit code"
echo "build_features: ok"
