#!/usr/bin/env bash
# Side by side with Docker's BuildKit (the engine from Debian's docker.io,
# 20.10, whose built-in Dockerfile frontend is BuildKit 0.8's): each example
# that frontend can build offline is built by strata and by `docker build`
# from the same busybox base; docker's image is saved, loaded into strata's
# store and both are flattened and compared file by file (path, type, mode,
# owner, size, content hash, symlink target), then config field by field and
# the history (created_by, empty_layer) line by line.
# What is left out, and why:
#  - examples using features newer than BuildKit 0.8's built-in frontend
#    (heredocs, COPY --exclude) are not built by docker; a `# syntax=` line
#    is dropped (the frontend image it names cannot be pulled offline);
#  - mtimes are not compared (each tool stamps its own build time);
#  - BuildKit 0.8 leaves in the image the empty directories it created as
#    RUN --mount targets; BuildKit since 0.10 removes them (executor's
#    MountStubsCleaner), and so does strata: empty directories that docker
#    alone has are dropped from its listing;
#  - cache-mount's /runs-seen counts the builds that used the cache mount,
#    which is each tool's own history.
. "$(dirname "$0")/lib.sh"
need python3
[ "$(id -u)" -eq 0 ] || skip "needs root (strata build runs steps in namespaces over overlayfs)"
[ -x /bin/busybox ] || skip "needs /bin/busybox (apt-get install busybox-static)"
# Debian's client has BuildKit built in; a newer docker without buildx has not.
DOCKER=docker
[ -x /usr/bin/docker ] && DOCKER=/usr/bin/docker
command -v "$DOCKER" >/dev/null || skip "needs docker (apt-get install docker.io)"
"$DOCKER" info >/dev/null 2>&1 || skip "no Docker engine answers (scripts/dockerd.sh up starts one)"
export DOCKER_BUILDKIT=1
EX=$(cd "$(dirname "$0")/../../examples/Dockerfiles" && pwd)
tag=strata-e2e-$$
on_exit '"$DOCKER" image ls -q --filter "reference=$tag-*" | xargs -r "$DOCKER" rmi -f >/dev/null 2>&1'

strata bootstrap busybox >/dev/null || fail "bootstrap"
strata save busybox:latest --format docker -o "$WORK/bb.tar" || fail "save"
"$DOCKER" load -i "$WORK/bb.tar" >/dev/null || fail "docker load of strata's busybox"
"$DOCKER" tag busybox:latest "$tag-base" >/dev/null || fail "docker tag"

config_fields='
import json, sys
d = json.load(sys.stdin)[0]
c = d.get("Config") or {}
for k in ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "StopSignal", "Shell",
          "OnBuild", "Healthcheck", "ArgsEscaped"]:
    print(k, json.dumps(c.get(k) or None, sort_keys=True))
for k in ["ExposedPorts", "Volumes", "Labels"]:
    print(k, json.dumps(c.get(k) or {}, sort_keys=True))
for h in d.get("History") or []:
    print("history", json.dumps(h.get("created_by", "")), bool(h.get("empty_layer")))
'
compared=0
for ex in basics multistage cache-mount onbuild add-tar user-workdir metadata secret; do
  ctx=$WORK/ctx-$ex
  cp -a "$EX/$ex" "$ctx"
  sed -i '/^# syntax=/d' "$ctx/Dockerfile"
  extra=()
  [ $ex = secret ] && { echo s3cr3t >"$WORK/token.txt"; extra=(--secret "id=token,src=$WORK/token.txt"); }
  strata build --progress quiet "${extra[@]}" -t "cmp/$ex" "$ctx" >/dev/null 2>"$WORK/err" ||
    { cat "$WORK/err" >&2; fail "strata build $ex"; }
  "$DOCKER" build --network none -q "${extra[@]}" -t "$tag-$ex" "$ctx" >/dev/null 2>"$WORK/err" ||
    { cat "$WORK/err" >&2; fail "docker build $ex"; }
  "$DOCKER" save "$tag-$ex" -o "$WORK/d.tar" || fail "docker save $ex"
  strata load -i "$WORK/d.tar" -t "docker/$ex" >/dev/null || fail "strata load of docker's $ex"
  rm -rf "$WORK/s" "$WORK/d" && mkdir -p "$WORK/s" "$WORK/d"
  strata unpack "cmp/$ex" "$WORK/s/root" && strata unpack "docker/$ex" "$WORK/d/root" || fail "unpack $ex"
  tree_dump "$WORK/s/root" | grep -v '^\./runs-seen ' >"$WORK/strata.tree"
  tree_dump "$WORK/d/root" | grep -v '^\./runs-seen ' | python3 -c '
import sys
strata = {l.split(" ")[0] for l in open(sys.argv[1])}
lines = sys.stdin.readlines()
paths = [l.split(" ")[0] for l in lines]
dirs = {p for p, l in zip(paths, lines) if p not in strata and l.split(" ")[1] == "d"}
# An empty mount stub: a directory docker alone has, holding only such directories.
def stub(p):
    return all(q in dirs for q in paths if q == p or q.startswith(p + "/"))
stubs = {p for p in dirs if stub(p)}
sys.stdout.writelines(l for p, l in zip(paths, lines) if p not in stubs)' "$WORK/strata.tree" >"$WORK/docker.tree"
  diff -u "$WORK/docker.tree" "$WORK/strata.tree" >&2 || fail "$ex: root filesystems differ (- docker, + strata)"
  for who in cmp docker; do
    strata inspect --format json "$who/$ex" | python3 -c "$config_fields" >"$WORK/$who.cfg" || fail "inspect $who/$ex"
  done
  diff -u "$WORK/docker.cfg" "$WORK/cmp.cfg" >&2 || fail "$ex: configs differ (- docker, + strata)"
  strata rmi "docker/$ex" >/dev/null
  compared=$((compared + 1))
done
echo "ok: $compared examples agree with docker build (BuildKit)"
