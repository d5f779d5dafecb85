#!/usr/bin/env bash
# strata build as a Docker user expects it (issue 18): parallel stages that
# write the same cache records, platform ARGs declared globally without a
# value, COPY --parents with ** and the ./ pivot, gzip layers by default,
# outputs to stdout (-o -, -q -o type=tar,dest=-), the Dockerfile or the
# context on stdin, --label, BuildKit's type=docker / type=oci tar outputs,
# the warnings for unused build args and foreign # syntax= frontends, and
# `images` showing the uncompressed size, the same in every store.
# Needs root and overlayfs (the ctest entry runs behind the overlay probe).
. "$(dirname "$0")/lib.sh"
need python3
[ -x /bin/busybox ] || skip "needs /bin/busybox (apt-get install busybox-static)"
strata bootstrap busybox >/dev/null || fail "bootstrap busybox"

# build ARGS...: plain progress, the log in $WORK/log
build() { strata build --progress plain "$@" >"$WORK/log" 2>&1 || { cat "$WORK/log" >&2; fail "build $*"; }; }
unpack() { rm -rf "$WORK/u"; strata unpack "$1" "$WORK/u" >/dev/null || fail "unpack $1"; echo "$WORK/u"; }
# layer media types of an image, from the store's own layout
media_types() {
  python3 - "$STRATA_ROOT" "$1" <<'PY'
import json, sys, os
root, name = sys.argv[1], sys.argv[2]
idx = json.load(open(os.path.join(root, "index.json")))
for m in idx["manifests"]:
    ref = m.get("annotations", {}).get("org.opencontainers.image.ref.name", "")
    if ref.split("/")[-1] == name + ":latest":
        d = m["digest"].split(":")[1]
        man = json.load(open(os.path.join(root, "blobs/sha256", d)))
        print(" ".join(l["mediaType"] for l in man["layers"]))
        break
PY
}

# --- 1. stages whose steps share cache keys write the same records at once
C=$WORK/race
mkdir -p "$C"
{
  for s in a b c d e f; do
    echo "FROM busybox AS $s"
    for i in $(seq 1 30); do echo "ENV V$i=same"; done
    echo "RUN echo same > /x"
  done
  echo "FROM busybox"
  for s in a b c d e f; do echo "COPY --from=$s /x /$s"; done
} >"$C/Dockerfile"
build -t race "$C"
for i in 1 2 3; do
  build --no-cache -t race "$C"
done
leftover=$(find "$STRATA_ROOT/cache" -name '*.tmp.*' | head -1)
[ -z "$leftover" ] || fail "a temporary cache file was left behind: $leftover"

# --- 2. a global platform ARG without a value keeps the automatic value
C=$WORK/arch
mkdir -p "$C"
cat >"$C/Dockerfile" <<'DF'
ARG TARGETARCH
ARG TARGETOS
ARG TARGETPLATFORM
ARG BUILDARCH
FROM busybox
ARG TARGETARCH
ARG TARGETOS
ARG TARGETPLATFORM
ARG BUILDARCH
ENV ARCHS="$TARGETOS/$TARGETARCH $TARGETPLATFORM $BUILDARCH"
RUN echo "$ARCHS" > /arch
DF
build -t arch "$C"
case $(uname -m) in
  x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;;
esac
assert_eq "$(cat "$(unpack arch)/arch")" "linux/$arch linux/$arch $arch" "TARGETARCH redeclared in a stage"
assert_contains "$(strata parse "$C/Dockerfile")" "linux/$arch linux/$arch $arch" "strata parse shows the same"

# --- 3. COPY --parents: ** (any depth, none included) and the ./ pivot
C=$WORK/parents
mkdir -p "$C/src/x/y" "$C/x/y"
echo a >"$C/src/a.txt"; echo b >"$C/src/x/b.txt"; echo c >"$C/src/x/y/c.txt"; echo no >"$C/src/x/y/c.md"
echo p >"$C/x/y/p.txt"; echo q >"$C/x/y/q.txt"
cat >"$C/Dockerfile" <<'DF'
FROM busybox
COPY --parents ./src/**/*.txt /parents/
COPY --parents ./x/./y/*.txt /pivot/
DF
build -t parents "$C"
r=$(unpack parents)
assert_eq "$(cd "$r/parents" && find . -type f | LC_ALL=C sort | tr '\n' ' ')" \
  "./src/a.txt ./src/x/b.txt ./src/x/y/c.txt " "** matches any number of directories"
assert_eq "$(cd "$r/pivot" && find . -type f | LC_ALL=C sort | tr '\n' ' ')" "./y/p.txt ./y/q.txt " \
  "the ./ pivot keeps the paths from the pivot on"

# --- 4. layers are gzip by default (Docker 20.10 cannot pull zstd)
assert_eq "$(media_types parents)" \
  "application/vnd.oci.image.layer.v1.tar+gzip application/vnd.oci.image.layer.v1.tar+gzip application/vnd.oci.image.layer.v1.tar+gzip" \
  "build writes gzip layers by default"
build -t parents-zstd --no-cache --compression zstd "$C"
assert_contains "$(media_types parents-zstd)" "tar+zstd" "--compression zstd still writes zstd"

# --- 5. outputs on stdout carry only the tar
strata build -q -o type=tar,dest=- "$C" >"$WORK/rootfs.tar" 2>"$WORK/err" || { cat "$WORK/err"; fail "build -q -o type=tar,dest=-"; }
python3 -c 'import sys, tarfile; t = tarfile.open(sys.argv[1]); assert "parents/src/a.txt" in t.getnames()' \
  "$WORK/rootfs.tar" || fail "-q -o type=tar,dest=-: stdout is not just the tar"
assert_eq "$(tail -c 72 "$WORK/rootfs.tar" | tr -d '\0' | grep -c sha256)" "0" "the image ID is not after the tar"
grep -q '^sha256:[0-9a-f]\{64\}$' "$WORK/err" || fail "-q with stdout taken prints the ID on stderr"
(cd "$WORK" && strata build -q -o - "$C" >"$WORK/dash.tar" 2>/dev/null) || fail "build -o -"
[ ! -e "$WORK/-" ] || fail "-o - made a directory named -"
python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).getmember("pivot/y/p.txt")' "$WORK/dash.tar" ||
  fail "-o - writes the root filesystem as a tar to stdout"

# --- 6. -f - and - as the context
C=$WORK/stdin
mkdir -p "$C"
echo "from the context" >"$C/ctx.txt"
printf 'FROM busybox\nCOPY ctx.txt /ctx.txt\nRUN echo viaf > /f\n' >"$WORK/Dockerfile.stdin"
strata build -q -t stdin-f -f - "$C" <"$WORK/Dockerfile.stdin" >/dev/null 2>"$WORK/err" ||
  { cat "$WORK/err"; fail "build -f -"; }
r=$(unpack stdin-f)
assert_eq "$(cat "$r/ctx.txt") $(cat "$r/f")" "from the context viaf" "-f - reads the Dockerfile from stdin"
cp "$WORK/Dockerfile.stdin" "$C/Dockerfile"
tar -C "$C" -czf "$WORK/ctx.tar.gz" .
strata build -q -t stdin-tar - <"$WORK/ctx.tar.gz" >/dev/null 2>"$WORK/err" || { cat "$WORK/err"; fail "build - < ctx.tar.gz"; }
assert_eq "$(cat "$(unpack stdin-tar)/ctx.txt")" "from the context" "- takes a compressed tar as the context"
printf 'FROM busybox\nRUN echo nocontext > /n\n' | strata build -q -t stdin-df - >/dev/null 2>"$WORK/err" ||
  { cat "$WORK/err"; fail "build - < Dockerfile"; }
assert_eq "$(cat "$(unpack stdin-df)/n")" "nocontext" "- takes a Dockerfile without a context"
expect_fail "can't use stdin for both" strata build -f - - </dev/null

# --- 7. --label, type=docker and type=oci tars, warnings
C=$WORK/labels
mkdir -p "$C"
printf '# syntax=example.com/someone/frontend:1\nFROM busybox\nARG USED=1\nRUN echo $USED > /u\n' >"$C/Dockerfile"
build -t labels --label org.example.team=infra --label empty= --build-arg USED=2 --build-arg NOTUSED=3 \
  -o type=docker,dest="$WORK/docker.tar" -o type=oci,dest="$WORK/oci.tar" -o type=docker "$C"
log=$(cat "$WORK/log")
assert_contains "$log" "[Warning] One or more build-args [NOTUSED] were not consumed" "unused build arg warning"
assert_contains "$log" "# syntax=example.com/someone/frontend:1: strata does not run external frontends" "syntax warning"
labels=$(strata inspect --format json labels | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Config"]["config"]["Labels"])')
assert_contains "$labels" "'org.example.team': 'infra'" "--label sets the label"
assert_contains "$labels" "'empty': ''" "--label K= sets an empty label"
tar tf "$WORK/docker.tar" | grep -qx manifest.json || fail "type=docker,dest= writes a docker-archive tar"
tar tf "$WORK/oci.tar" | grep -qx oci-layout || fail "type=oci,dest= writes an OCI archive tar (as BuildKit)"
tar tf "$WORK/oci.tar" | grep -qx index.json || fail "type=oci tar has index.json"
printf '# syntax=docker/dockerfile:1.7\nFROM busybox\nRUN true\n' >"$C/Dockerfile"
build "$C"
[[ "$(cat "$WORK/log")" != *"external frontends"* ]] || fail "docker/dockerfile is the syntax strata runs: no warning"

# --- 8. images SIZE: the uncompressed content, the same in every store
C=$WORK/size
mkdir -p "$C"
head -c 300000 /dev/zero >"$C/zeros"
printf 'FROM busybox\nCOPY zeros /zeros\n' >"$C/Dockerfile"
build -t size "$C"
# docker image inspect's Size (bytes) is the same number `images` shows as SIZE.
size_of() { strata inspect --format '{{.Size}}' "$1"; }
s_bb=$(size_of busybox)
s_img=$(size_of size)
assert_eq "$((s_img - s_bb))" "300000" "SIZE counts the uncompressed bytes the layer adds"
bb_blob=$(find "$STRATA_ROOT/blobs/sha256" -type f -size +100k -printf '%s\n' | sort -n | tail -1)
[ "$s_bb" -gt "$bb_blob" ] || fail "busybox SIZE $s_bb should be its uncompressed size (over the blob's $bb_blob)"
strata save size -o "$WORK/size.tar" --format oci || fail "save"
OTHER=$WORK/other
STRATA_ROOT=$OTHER strata load -i "$WORK/size.tar" >/dev/null || fail "load into another store"
assert_eq "$(STRATA_ROOT=$OTHER size_of size)" "$s_img" "the same image shows the same SIZE in another store"
echo "build_parity: all checks passed"
