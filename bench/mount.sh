#!/usr/bin/env bash
# Union mounts of one three-layer image: strata-overlay (strata's FUSE union
# filesystem) against fuse-overlayfs and kernel overlayfs, on the same tree
# (20,000 small files and five 50 MiB files split over three layers, with a
# whiteout, an opaque directory and a shadowed file), in one run.
#
#   bench/mount.sh [BUILD_DIR]        (as root; RUNS=5, DATA=/var/tmp/strata-bench-mount)
#
# Figures, each the median of RUNS runs with the three mounts interleaved:
#   mount       mount + stat of the root + umount (x10 per run)
#   stat cold   fresh mount, caches dropped, find -printf size/mode/mtime of every entry
#   stat warm   the same walk again
#   read cold   fresh mount, caches dropped, cat of every file
#   read warm   the same reads again
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "bench/mount.sh: needs root (mounts, drop_caches)" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-$HERE/../build}
SOVL=$(cd "$BUILD" && pwd)/layerfs/strata-overlay
RUNS=${RUNS:-5}
DATA=${DATA:-/var/tmp/strata-bench-mount}
command -v fuse-overlayfs >/dev/null || { echo "needs fuse-overlayfs (apt-get install fuse-overlayfs)" >&2; exit 1; }
[ -x "$SOVL" ] || { echo "no $SOVL: build first" >&2; exit 1; }

LW=$DATA/lowers
if [ ! -f "$LW/.done" ]; then
  python3 "$HERE/gen-tree.py" "$DATA/src" >/dev/null
  rm -rf "$LW"; mkdir -p "$LW"/{l1,l2,l3}/{small,big}
  S=$DATA/src
  for d in $(seq -w 0 19); do
    n=$((10#$d)); l=l1; [ $n -ge 7 ] && l=l2; [ $n -ge 14 ] && l=l3
    cp -a "$S/small/d$d" "$LW/$l/small/"
  done
  cp -a "$S/big/blob0.bin" "$S/big/blob1.bin" "$LW/l1/big/"
  cp -a "$S/big/blob2.bin" "$S/big/blob3.bin" "$LW/l2/big/"
  cp -a "$S/big/blob4.bin" "$LW/l3/big/"
  mkdir -p "$LW/l2/small/d00/s01"; echo "shadowed in l2" >"$LW/l2/small/d00/s01/f000.txt"
  mkdir -p "$LW/l3/small/d00/s00"; mknod "$LW/l3/small/d00/s00/f001.txt" c 0 0
  mkdir -p "$LW/l3/small/d01/s00"
  python3 -c "import os,sys; os.setxattr(sys.argv[1], 'trusted.overlay.opaque', b'y')" "$LW/l3/small/d01/s00"
  echo "opaque dir" >"$LW/l3/small/d01/s00/only.txt"
  rm -rf "$DATA/src"
  touch "$LW/.done"
fi
LOWER=$LW/l3:$LW/l2:$LW/l1
MNT=$DATA/mnt
TOOLS="kernel fuse-overlayfs strata-overlay"
for t in $TOOLS; do mkdir -p "$MNT/$t"; done

do_mount() {
  case $1 in
    kernel) mount -t overlay overlay -o ro,lowerdir="$LOWER" "$MNT/kernel" ;;
    fuse-overlayfs) fuse-overlayfs -o lowerdir="$LOWER" "$MNT/fuse-overlayfs" ;;
    strata-overlay) "$SOVL" -o lowerdir="$LOWER" "$MNT/strata-overlay" ;;
  esac
}
do_umount() { umount "$MNT/$1" 2>/dev/null || true; }
cleanup() { for t in $TOOLS; do do_umount "$t"; done; }
trap cleanup EXIT
cleanup

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
stat_walk() { find "$MNT/$1" -printf '%p %s %m %T@\n' >/dev/null; }
read_all() { find "$MNT/$1" -type f -print0 | xargs -0 cat >/dev/null; }

# Sanity: the three views are the same.
for t in $TOOLS; do do_mount "$t"; done
ref=""
for t in $TOOLS; do
  sum=$(cd "$MNT/$t" && find . -printf '%p %y %s %m\n' | sort | md5sum | cut -c1-32)
  files=$(find "$MNT/$t" -type f | wc -l)
  wh=$([ -e "$MNT/$t/small/d00/s00/f001.txt" ] && echo VISIBLE || echo hidden)
  printf '# %-15s %s entries-md5 %s files %s whiteout %s opaque-dir: %s\n' "$t" "" "$sum" "$files" "$wh" \
    "$(ls "$MNT/$t/small/d01/s00" | tr '\n' ' ')"
  [ -z "$ref" ] && ref=$sum
  [ "$sum" = "$ref" ] || { echo "bench/mount.sh: $t shows a different tree" >&2; exit 1; }
done
cleanup

declare -A R
record() { R[$1,$2]="${R[$1,$2]:-} $3"; }
order=($TOOLS)
for run in $(seq 1 "$RUNS"); do
  # rotate the order each run so drift on a shared machine spreads evenly
  order=("${order[@]:1}" "${order[0]}")
  for t in "${order[@]}"; do
    a=$(now); for i in 1 2 3 4 5 6 7 8 9 10; do do_mount "$t"; stat "$MNT/$t" >/dev/null; umount "$MNT/$t"; done; b=$(now)
    record mount "$t" "$(awk -v x="$(elapsed "$a" "$b")" 'BEGIN { printf "%.4f", x / 10 }')"
    do_mount "$t"; drop
    a=$(now); stat_walk "$t"; b=$(now); record stat_cold "$t" "$(elapsed "$a" "$b")"
    a=$(now); stat_walk "$t"; b=$(now); record stat_warm "$t" "$(elapsed "$a" "$b")"
    do_umount "$t"; do_mount "$t"; drop
    a=$(now); read_all "$t"; b=$(now); record read_cold "$t" "$(elapsed "$a" "$b")"
    a=$(now); read_all "$t"; b=$(now); record read_warm "$t" "$(elapsed "$a" "$b")"
    do_umount "$t"
  done
  echo "# run $run/$RUNS done" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '| figure (median of %s, seconds) | kernel overlay | fuse-overlayfs | strata-overlay | strata / fuse-overlayfs | strata / kernel |\n' "$RUNS"
printf '|---|---|---|---|---|---|\n'
for m in mount stat_cold stat_warm read_cold read_warm; do
  k=$(echo "${R[$m,kernel]}" | median); f=$(echo "${R[$m,fuse-overlayfs]}" | median); s=$(echo "${R[$m,strata-overlay]}" | median)
  printf '| %s | %s | %s | %s | %s | %s |\n' "${m/_/ }" "$k" "$f" "$s" \
    "$(awk -v s="$s" -v f="$f" 'BEGIN { printf "%.2fx", s / f }')" \
    "$(awk -v s="$s" -v k="$k" 'BEGIN { printf "%.2fx", s / k }')"
done
for m in mount stat_cold stat_warm read_cold read_warm; do
  for t in $TOOLS; do echo "# raw $m $t:${R[$m,$t]}"; done
done
