#!/usr/bin/env bash
# Runner start-up benchmark: the time to start and finish `true` in a
# container with strata's runner, against the floor of creating the same
# namespaces with util-linux's unshare (no root switch, no mounts).
#
#   bench/run.sh [BUILD_DIR] [RUNS]
#
# Both commands run alternately (A B A B ...) RUNS times on the same busybox
# root directory; medians and the per-pair ratio are printed. Needs root.
# podman/docker comparisons join once `strata run IMAGE` exists (see
# bench/README.md, "Runner").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
runs=${2:-50}
bin=$build/runner/strata-bench-run
[ -x "$bin" ] || { echo "build first: $bin missing" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 2; }

work=$(mktemp -d /tmp/strata-bench-run.XXXXXX)
trap 'rm -rf "$work"' EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,etc,proc,dev,sys,tmp}
cp /bin/busybox "$rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
echo 'root:x:0:' > "$rootfs/etc/group"
: > "$rootfs/etc/hosts"; : > "$rootfs/etc/hostname"; : > "$rootfs/etc/resolv.conf"

python3 "$here/run_timer.py" -n "$runs" \
  --label "strata runner (true)" "$bin $rootfs /bin/true" \
  --label "unshare floor (true)" "unshare --fork --pid --mount --net --uts --ipc $rootfs/bin/true"
if command -v runc >/dev/null; then
  # runc, the OCI runtime under docker and podman, on the same directory
  # (its default spec: same namespaces plus cgroups, seccomp, masked paths).
  mkdir -p "$work/bundle"
  (cd "$work/bundle" && runc spec)
  python3 - "$work/bundle/config.json" "$rootfs" <<'PY'
import json, sys
path, rootfs = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["root"] = {"path": rootfs, "readonly": False}
json.dump(c, open(path, "w"))
PY
  python3 "$here/run_timer.py" -n "$runs" \
    --label "strata runner (true)" "$bin $rootfs /bin/true" \
    --label "runc run (true)" "runc run --bundle $work/bundle strata-bench-\$\$"
fi
python3 "$here/run_timer.py" -n "$runs" \
  --label "strata runner --init (true)" "$bin --init $rootfs /bin/true" \
  --label "unshare floor (true)" "unshare --fork --pid --mount --net --uts --ipc $rootfs/bin/true"
echo "in-process (runner only, no process start-up), $runs runs:"
"$bin" -n "$runs" "$rootfs" /bin/true | sort -n | awk '{a[NR]=$1} END {printf "  median %.4f s  (min %.4f, max %.4f)\n", a[int((NR+1)/2)], a[1], a[NR]}'
