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

. "$here/../tests/support/docker_registry.sh"
RDIR=$WORK/registry
rm -rf "$RDIR"
registry_start "$RDIR" || exit 1
trap 'registry_stop "$RDIR"' EXIT
# registry_fresh runs from abtime's --prepare (bash -c), so it and the
# helpers it calls are exported; the registry's state lives in $RDIR.
# Empty storage (skopeo's blob-info cache then points at blobs that are
# gone, so it uploads everything, as strata does), same port.
registry_fresh() {
  registry_stop "$RDIR"; rm -rf "$RDIR/storage"
  registry_spawn "$RDIR" || { echo "docker-registry did not restart; see $RDIR/log" >&2; return 1; }
}
export -f registry_fresh registry_spawn registry_stop registry_answers
export RDIR

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
