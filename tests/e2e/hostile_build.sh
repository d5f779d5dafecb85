#!/usr/bin/env bash
# Hostile build inputs: ids that do not fit a uid_t, invalid FROM references,
# a .dockerignore or Dockerfile that is a symlink (followed inside the
# context, refused out of it, as BuildKit sees the context), an ignore file
# that cannot be read. Each error names the Dockerfile line or the file.
. "$(dirname "$0")/lib.sh"

C=$WORK/ctx
mkdir -p "$C" "$WORK/outside"
echo a >"$C/a"
echo secret >"$C/secret"
bad_build() { expect_fail "$1" strata build --progress plain "${@:2}"; }

printf 'FROM scratch\nCOPY --chown=4294967296:0 a /a\n' >"$C/Dockerfile.chown"
bad_build 'Dockerfile.chown:2' -f "$C/Dockerfile.chown" "$C"
bad_build '--chown=4294967296:0: user id 4294967296 out of range (0 to 4294967294)' -f "$C/Dockerfile.chown" "$C"
printf 'FROM scratch\nCOPY --chown=0:99999999999 a /a\n' >"$C/Dockerfile.chown2"
bad_build 'group id 99999999999 out of range' -f "$C/Dockerfile.chown2" "$C"

# USER with an id no uid_t holds, or garbage, is looked up as a name, as runc
# does, and the step fails naming its Dockerfile line: never a wrapped id.
if [ -x /bin/busybox ] && strata bootstrap busybox >/dev/null 2>&1; then
  for u in 4294967296 -1 99999999999999999999 '0:4294967296'; do
    printf 'FROM busybox\nUSER %s\nRUN id\n' "$u" >"$C/Dockerfile.user"
    out=$(strata build --progress plain --network none -f "$C/Dockerfile.user" "$C" 2>&1) &&
      fail "USER $u must not run"
    assert_contains "$out" "Dockerfile.user:3: RUN id: user \"$u\": unable to find" "USER $u"
  done
else
  echo "note: no /bin/busybox, the USER cases were not run"
fi

printf 'FROM busybox@sha256:1234\n' >"$C/Dockerfile.from"
bad_build 'Dockerfile.from:1' -f "$C/Dockerfile.from" "$C"
bad_build 'invalid image reference "busybox@sha256:1234"' -f "$C/Dockerfile.from" "$C"
printf 'FROM Not/A:Valid:Ref\n' >"$C/Dockerfile.from2"
bad_build 'invalid image reference' -f "$C/Dockerfile.from2" "$C"

# The Dockerfile as a symlink: inside the context it is followed.
printf 'FROM scratch\nCOPY . /\n' >"$C/real.Dockerfile"
ln -s real.Dockerfile "$C/Dockerfile"
echo secret >"$WORK/outside/.dockerignore"
# .dockerignore as a symlink inside the context: followed.
echo secret >"$C/ignore-list"
ln -s ignore-list "$C/.dockerignore"
strata build --progress plain -t inside:1 "$C" >"$WORK/log" 2>&1 || { cat "$WORK/log" >&2; fail "build with symlinks inside the context"; }
strata unpack inside:1 "$WORK/out" || fail "unpack"
[ -f "$WORK/out/a" ] || fail "a is copied"
[ ! -e "$WORK/out/secret" ] || fail "the .dockerignore behind a symlink inside the context applies"
# ... out of it refused.
rm "$C/.dockerignore"
ln -s "$WORK/outside/.dockerignore" "$C/.dockerignore"
bad_build 'is a symlink to '"$WORK"'/outside/.dockerignore, outside' "$C"
# A dangling one, or a directory, cannot be read: an error, never "nothing ignored".
rm "$C/.dockerignore"
ln -s nowhere "$C/.dockerignore"
bad_build 'a symlink that leads nowhere' "$C"
rm "$C/.dockerignore"
mkdir "$C/.dockerignore"
bad_build 'cannot read the ignore file' "$C"
rmdir "$C/.dockerignore"
rm "$C/Dockerfile"
ln -s "$WORK/outside/Dockerfile" "$C/Dockerfile"
printf 'FROM scratch\n' >"$WORK/outside/Dockerfile"
bad_build 'the Dockerfile '"$C"'/Dockerfile is a symlink to' "$C"

# --- context file names that are not UTF-8 (a name is any bytes but / and
# NUL): the build keeps them byte for byte, with gzip and zstd layers alike; a
# zstd:chunked layer then has no TOC (its JSON strings cannot hold such a
# name), and a rebuild after one of them changed says which.
U=$WORK/utf
mkdir -p "$U"
printf 'FROM scratch\nCOPY . /d/\n' >"$U/Dockerfile"
printf 'x\n' >"$U/$(printf 'bad\377name')"
printf 'y\n' >"$U/$(printf 'ok\303\251')"
cat >"$WORK/names.py" <<'PY'
import io, json, subprocess, sys, tarfile
d = json.load(sys.stdin)[0]
layer = d["Manifest"]["layers"][-1]
blob = open(sys.argv[1] + "/blobs/sha256/" + layer["digest"][7:], "rb").read()
cmd = ["gzip", "-dc"] if blob[:2] == b"\x1f\x8b" else ["zstd", "-dcq"]
tar = subprocess.run(cmd, input=blob, capture_output=True, check=True).stdout
t = tarfile.open(fileobj=io.BytesIO(tar), encoding="utf-8", errors="surrogateescape")
names = sorted(m.name.encode("utf-8", "surrogateescape") for m in t.getmembers())
want = sorted([b"d", b"d/Dockerfile", b"d/bad\xffname", b"d/ok\xc3\xa9"])
if names != want:
    sys.exit("layer names %r, want %r" % (names, want))
toc = "io.github.containers.zstd-chunked.manifest-checksum" in (layer.get("annotations") or {})
if toc:
    sys.exit("a TOC for names that are not UTF-8")
PY
for c in gzip zstd; do
  strata build --progress plain --no-cache --compression $c -t utf:$c "$U" >"$WORK/utf.log" 2>&1 ||
    { cat "$WORK/utf.log" >&2; fail "a context with a name that is not UTF-8 ($c)"; }
  strata inspect --format json utf:$c | python3 "$WORK/names.py" "$STRATA_ROOT" || fail "the names of the $c layer"
done
sleep 2.1
printf 'z\n' >>"$U/$(printf 'bad\377name')"
strata build --progress plain --compression zstd -t utf:zstd "$U" >"$WORK/utf.log" 2>&1 ||
  { cat "$WORK/utf.log" >&2; fail "a rebuild with a name that is not UTF-8"; }
assert_contains "$(cat "$WORK/utf.log")" "1 file changed: modified bad$(printf '\357\277\275')name" "the miss is explained"

# --- a Dockerfile with bytes that are not UTF-8 (a Latin-1 comment, a RUN
# that writes one) builds, as with BuildKit, which reads it as bytes; the RUN
# gets its text byte for byte. A NUL byte is still refused, naming the line.
if [ -x /bin/busybox ] && strata bootstrap busybox >/dev/null 2>&1; then
  L=$WORK/latin1
  mkdir -p "$L"
  printf 'FROM busybox\n# Gr\366\337e\nRUN printf "caf\351" > /x\n' >"$L/Dockerfile"
  strata build --progress plain --network none -t latin1 "$L" >"$WORK/latin1.log" 2>&1 ||
    { cat "$WORK/latin1.log" >&2; fail "a Latin-1 Dockerfile"; }
  assert_eq "$(strata cat latin1 /x | od -An -tx1 | tr -d ' \n')" "636166e9" "the RUN wrote its bytes as given"
  printf 'FROM busybox\nRUN echo a\0b\n' >"$L/Dockerfile.nul"
  bad_build 'Dockerfile.nul:2' -f "$L/Dockerfile.nul" "$L"
else
  echo "note: no /bin/busybox, the Latin-1 Dockerfile case was not run"
fi
echo ok
