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
echo ok
