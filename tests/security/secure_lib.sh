# Helpers shared by tests/security/mounts_* and devices_*: hostile images
# made from a directory tree (busybox and whatever the attack needs).
. "$(dirname "$0")/../e2e/lib.sh"

# rootfs DIR: a minimal busybox root (bin, etc/passwd, tmp, the usual mount points).
rootfs() {
  local d=$1
  mkdir -p "$d/bin" "$d/etc" "$d/tmp" "$d/root"
  cp "$(command -v busybox)" "$d/bin/busybox"
  local a
  for a in $("$d/bin/busybox" --list); do
    [ -e "$d/bin/$a" ] || ln -s busybox "$d/bin/$a"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$d/etc/passwd"
  echo 'root:x:0:' > "$d/etc/group"
  chmod 1777 "$d/tmp"
}

# image NAME DIR: imports DIR as the one-layer image NAME.
image() {
  tar -C "$2" --numeric-owner -cf "$WORK/$1.tar" . || fail "tar of $2"
  strata import -t "$1" "$WORK/$1.tar" >/dev/null || fail "import $1"
}

# build_expect_fail TEXT DOCKERFILE-TEXT: a build of that Dockerfile must fail saying TEXT.
build_expect_fail() {
  local ctx
  ctx=$(mktemp -d "$WORK/ctx.XXXXXX")
  printf '%s\n' "$2" > "$ctx/Dockerfile"
  expect_fail "$1" strata build --progress plain "$ctx"
}

# build_ok DOCKERFILE-TEXT: the build must succeed.
build_ok() {
  local ctx
  ctx=$(mktemp -d "$WORK/ctx.XXXXXX")
  printf '%s\n' "$1" > "$ctx/Dockerfile"
  strata build --progress plain "$ctx" > "$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; fail "build: $1"; }
}
