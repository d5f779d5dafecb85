#!/usr/bin/env bash
# Push and pull of a 250 MB, 5-layer image (gzip layers of incompressible
# data) through one docker-registry on 127.0.0.1: strata against `skopeo copy`
# in the same run, alternating A B A B (abtime.py), medians and pairwise ratios.
#
#   bench/registry.sh [BUILD_DIR] [RUNS]
#
# Push: into a registry restarted with empty storage before each run. Pull: into an empty strata store / an empty OCI
# layout each run. Re-push: every blob already there (HEAD only).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-$here/../build}
RUNS=${2:-5}
STRATA=$(cd "$BUILD" && pwd)/cli/strata
[ -x "$STRATA" ] || STRATA=$(cd "$BUILD" && pwd)/strata
ABTIME=${ABTIME:-/work/shared/peers/abtime.py}
WORK=${BENCH_DIR:-/var/tmp/strata-bench-registry}
for tool in docker-registry skopeo python3; do
  command -v $tool >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
[ -x "$STRATA" ] || { echo "no strata binary under $BUILD" >&2; exit 1; }
mkdir -p "$WORK"
# Loopback only: nothing here may leave the machine.
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

IMG=$WORK/image
if [ ! -f "$IMG/index.json" ]; then
  echo "generating the image in $IMG ..."
  python3 "$here/registry_image.py" "$IMG" docker.io/bench/img:v1 5 250 >/dev/null
fi
bytes=$(python3 -c "import json,sys;m=json.load(open(sys.argv[1]+'/blobs/sha256/'+json.load(open(sys.argv[1]+'/index.json'))['manifests'][0]['digest'][7:]));print(sum(l['size'] for l in m['layers']))" "$IMG")

port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
REG=127.0.0.1:$port
cat >"$WORK/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: $REG
YML
# registry_up / registry_down run from abtime's --prepare (bash -c), so they
# are exported; the registry's pid lives in $WORK/registry.pid.
registry_down() {
  if [ -f "$WORK/registry.pid" ]; then
    local p; p=$(cat "$WORK/registry.pid")
    kill "$p" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    rm -f "$WORK/registry.pid"
  fi
}
registry_up() {
  setsid docker-registry serve "$WORK/registry.yml" >>"$WORK/registry.log" 2>&1 </dev/null &
  echo $! >"$WORK/registry.pid"
  for _ in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then return 0; fi; sleep 0.1
  done
  echo "docker-registry did not start; see $WORK/registry.log" >&2; return 1
}
# A registry with empty storage (skopeo's blob-info cache then points at blobs
# that are gone, so it uploads everything, as strata does).
registry_fresh() {
  registry_down; rm -rf "$WORK/registry"; mkdir -p "$WORK/registry"
  registry_up
}
export -f registry_up registry_down registry_fresh
export WORK port
trap registry_down EXIT
registry_fresh

echo "strata: $STRATA ($("$STRATA" version 2>/dev/null | head -1)); skopeo $(skopeo --version | cut -d' ' -f3)"
echo "image: 5 gzip layers, $bytes bytes; registry: docker-registry $(docker-registry --version 2>/dev/null | cut -d' ' -f3) on $REG; $RUNS runs"
echo

echo "### push into an empty registry (restarted with empty storage before each run)"
python3 "$ABTIME" -n "$RUNS" --label "strata push" --label "skopeo copy oci: -> docker://" \
  --prepare "registry_fresh" \
  "$STRATA --root $IMG push -q bench/img:v1 $REG/bench/strata:v1" \
  "skopeo copy --quiet --dest-tls-verify=false oci:$IMG:docker.io/bench/img:v1 docker://$REG/bench/skopeo:v1"
echo
# Seed the registry for the pull and re-push runs.
skopeo copy --quiet --dest-tls-verify=false "oci:$IMG:docker.io/bench/img:v1" "docker://$REG/bench/pull:v1"
echo "### pull into an empty store / OCI layout"
python3 "$ABTIME" -n "$RUNS" --label "strata pull" --label "skopeo copy docker:// -> oci:" \
  --prepare "rm -rf $WORK/pull-strata" --prepare "rm -rf $WORK/pull-skopeo" \
  "$STRATA --root $WORK/pull-strata pull -q $REG/bench/pull:v1" \
  "skopeo copy --quiet --src-tls-verify=false docker://$REG/bench/pull:v1 oci:$WORK/pull-skopeo:v1"
echo
echo "### re-push, every blob already in the repository"
python3 "$ABTIME" -n "$RUNS" --label "strata re-push" --label "skopeo re-push" \
  "$STRATA --root $IMG push -q bench/img:v1 $REG/bench/pull:v1" \
  "skopeo copy --quiet --dest-tls-verify=false oci:$IMG:docker.io/bench/img:v1 docker://$REG/bench/pull:v1"
rm -rf "$WORK/pull-strata" "$WORK/pull-skopeo"
