#!/usr/bin/env bash
# Lazy images (strata-lazy): a ~300 MB image that was never unpacked, served
# straight from its compressed layers, against unpacking it first.
#
#   bench/lazy.sh [BUILD_DIR]     (as root; RUNS=3, COMPRESSIONS="gzip none",
#                                  DATA=/var/tmp/strata-bench-lazy)
#
# The image: busybox + one layer of 300 files of 1 MiB (half random, half
# zeros: it compresses to about half). strata's own zstd layers are one
# frame (not seekable): such an image is unpacked, so COMPRESSIONS=zstd
# measures the unpack twice. Figures, medians of RUNS runs:
#   ttfb first   `strata mount` of the image never unpacked, no index yet
#                (the index pass over the blob), + the first byte of a file
#   ttfb         the same with the index in the store (a later mount)
#   lazy cold    mount (index present) + cat of every file
#   unpack+read  `strata mount --no-lazy` (unpacks the snapshots) + cat of every file
#   warm lazy / warm overlay   the cat again on each mount (page cache)
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "bench/lazy.sh: needs root" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "${1:-$HERE/../build}" && pwd)
S=$BUILD/cli/strata
RUNS=${RUNS:-3}
DATA=${DATA:-/var/tmp/strata-bench-lazy}
export STRATA_ROOT=$DATA/store
mkdir -p "$DATA"
ms() { echo $(( $(date +%s%N) / 1000000 )); } # no interpreter start in the figures
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
readall() { find "$1" -type f -path '*/data/*' -exec cat {} + > /dev/null; }

if true; then
  "$S" inspect busybox >/dev/null 2>&1 || "$S" bootstrap busybox >/dev/null
  mkdir -p "$DATA/ctx"
  cat > "$DATA/ctx/Dockerfile" <<'DF'
FROM busybox
RUN mkdir /data && for i in $(seq 1 300); do \
      { dd if=/dev/urandom bs=512k count=1; dd if=/dev/zero bs=512k count=1; } 2>/dev/null > /data/f$i; \
    done
DF
  for c in ${COMPRESSIONS:-gzip none}; do
    "$S" inspect lazy-bench-$c >/dev/null 2>&1 ||
      "$S" build --no-cache --compression $c -t lazy-bench-$c "$DATA/ctx" >/dev/null 2>&1
  done
fi
M=$DATA/mnt
mkdir -p "$M"
echo "date: $(date -u +%FT%TZ)  load: $(cut -d' ' -f1-3 /proc/loadavg)  runs: $RUNS"
for c in ${COMPRESSIONS:-gzip none}; do
  img=lazy-bench-$c
  : > "$DATA/t"
  for _ in $(seq "$RUNS"); do
    rm -rf "$STRATA_ROOT/snapshots"/* "$STRATA_ROOT/lazy"
    t0=$(ms); "$S" mount "$img" "$M"; head -c1 "$M/data/f150" >/dev/null; t1=$(ms)
    "$S" umount "$M"; sleep 1
    t2=$(ms); "$S" mount "$img" "$M"; head -c1 "$M/data/f200" >/dev/null; t3=$(ms)
    "$S" umount "$M"
    t4=$(ms); "$S" mount "$img" "$M"; readall "$M"; t5=$(ms)
    t6=$(ms); readall "$M"; t7=$(ms)
    "$S" umount "$M"
    t8=$(ms); "$S" mount --no-lazy "$img" "$M"; readall "$M"; t9=$(ms)
    t10=$(ms); readall "$M"; t11=$(ms)
    "$S" umount "$M"
    echo "$((t1-t0)) $((t3-t2)) $((t5-t4)) $((t9-t8)) $((t7-t6)) $((t11-t10))" >> "$DATA/t"
  done
  col() { awk -v k="$1" '{print $k}' "$DATA/t" | median; }
  lc=$(col 3) up=$(col 4)
  printf '%-5s ttfb first %5d ms | ttfb %4d ms | lazy cold %5d ms | unpack+read %5d ms (%s x) | warm lazy %4d ms, overlay %4d ms\n' \
    "$c" "$(col 1)" "$(col 2)" "$lc" "$up" "$(python3 -c "print(round($lc/$up, 2))")" "$(col 5)" "$(col 6)"
done
