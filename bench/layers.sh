#!/bin/bash
# Layer pack/unpack benchmark: strata vs `tar | zstd -T0` and vs umoci, on the
# same deterministic tree (20,000 small files in nested directories + five
# 50 MiB incompressible files). Not a test: prints a Markdown table of
# medians, MB/s, files/s and ratios.
#
#   bench/layers.sh [RUNS [SECTION...]]   RUNS default 5; SECTION: pack-zstd pack-gzip
#                                          unpack-zstd unpack-gzip unpack-store (default: all)
#   env STRATA=path/to/strata, BENCH_DIR=... (default /var/tmp/strata-bench-layers)
#       STRATA_BASE=path/to/another/strata: also pack and unpack with it (before/after)
#
# unpack-store: the layer imported as an image, then `strata mount` + `umount`
# with no snapshot in the store: the store's unpack into snapshots/ (apply,
# syncfs, rename) plus a mount.
#
# Besides wall time, every run's CPU time (user + sys of the command and its
# children, from /usr/bin/time) is reported: on a shared machine it is far
# less noisy than wall time.
#
# Page cache warm (inputs are read right before each run, untimed); `sync`
# runs before every timed run so that one run's writeback does not land in
# the next one's time. Outputs are removed between runs (untimed). The tools
# of one comparison run interleaved.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
RUNS=${1:-${RUNS:-5}}
shift || true
WANT=" ${*:-pack-zstd pack-gzip unpack-zstd unpack-gzip unpack-store} "
want() { case $WANT in *" $1 "*) return 0 ;; esac; return 1; }
STRATA=${STRATA:-$HERE/../build/cli/strata}
W=${BENCH_DIR:-/var/tmp/strata-bench-layers}
DATA=$W/data
for tool in tar zstd gzip pigz umoci python3 /usr/bin/time; do
  command -v $tool >/dev/null || { echo "missing $tool (apt-get install $tool)" >&2; exit 1; }
done
[ -x "$STRATA" ] || { echo "build strata first ($STRATA)" >&2; exit 1; }
mkdir -p "$W"
if [ ! -f "$W/.data-ok" ]; then
  python3 "$HERE/gen-tree.py" "$DATA" --small 20000 --big 5 --big-mb 50 >/dev/null
  touch "$W/.data-ok"
fi
BYTES=$(du -sb --apparent-size "$DATA" | cut -f1)
FILES=$(find "$DATA" | wc -l)

declare -A MED CPU
# timed "LABEL#PREPARE#CMD" ...: the commands of one comparison run interleaved
# (A B C A B C ...), RUNS times each; PREPARE runs untimed before each run,
# then sync. The machine is shared, so interleaving spreads its noise evenly.
timed() {
  local -A T=() C=()
  local i spec label prep cmd s e u sy
  for ((i = 0; i < RUNS; i++)); do
    for spec in "$@"; do
      IFS='#' read -r label prep cmd <<<"$spec"
      bash -c "$prep"; sync
      s=$(date +%s%N)
      /usr/bin/time -f "%U %S" -o "$W/.cpu" bash -c "$cmd" >/dev/null 2>&1 || { echo "FAILED: $cmd" >&2; exit 1; }
      e=$(date +%s%N)
      read -r u sy <"$W/.cpu"
      T[$label]+="$(( (e - s) / 1000000 )) "
      C[$label]+="$(awk -v u="$u" -v s="$sy" 'BEGIN { printf "%d", (u + s) * 1000 }') "
    done
  done
  for spec in "$@"; do
    IFS='#' read -r label prep cmd <<<"$spec"
    MED[$label]=$(printf '%s\n' ${T[$label]} | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
    CPU[$label]=$(printf '%s\n' ${C[$label]} | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
    printf '  %-44s median %6d ms (CPU %6d ms)   runs: %s  CPU: %s\n' "$label" "${MED[$label]}" "${CPU[$label]}" "${T[$label]}" "${C[$label]}" >&2
  done
}
# Inputs are read into the page cache before each run (another user of the
# machine may have dropped it); outputs are removed.
warm_tree="find $DATA -type f -exec cat {} + >/dev/null"

# ---- umoci needs an OCI layout and a bundle whose rootfs holds the tree.
U=$W/umoci
rm -rf "$U"; mkdir -p "$U"
umoci init --layout "$U/layout" >/dev/null
umoci new --image "$U/layout:base" >/dev/null
prep_umoci_bundle="rm -rf $U/bundle && umoci unpack --image $U/layout:base $U/bundle >/dev/null && cp -a $DATA/. $U/bundle/rootfs/"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== pack (${RUNS} runs each, interleaved)" >&2
BASE_SPEC=()
[ -n "${STRATA_BASE:-}" ] && BASE_SPEC=("strata (base build) layer create (zstd)#rm -f $W/b.tar.zst; $warm_tree#$STRATA_BASE layer create $DATA -o $W/b.tar.zst")
want pack-zstd && timed "strata layer create (zstd)#rm -f $W/s.tar.zst; $warm_tree#$STRATA layer create $DATA -o $W/s.tar.zst" \
      "strata layer create --chunked (zstd:chunked)#rm -f $W/c.tar.zst; $warm_tree#$STRATA layer create --chunked $DATA -o $W/c.tar.zst" \
      "${BASE_SPEC[@]}" \
      "tar | zstd -T0#rm -f $W/t.tar.zst; $warm_tree#tar -C $DATA -cf - . | zstd -q -T0 > $W/t.tar.zst" \
      "tar | zstd -T0, both sha256 (diff ID + digest)#rm -f $W/t.tar.zst; $warm_tree#tar -C $DATA -cf - . | tee >(sha256sum >$W/diffid) | zstd -q -T0 | tee >(sha256sum >$W/digest) > $W/t.tar.zst"
BASE_GZIP=()
[ -n "${STRATA_BASE:-}" ] && BASE_GZIP=("strata (base build) layer create (gzip)#rm -f $W/b.tar.gz; $warm_tree#$STRATA_BASE layer create $DATA --compression gzip -o $W/b.tar.gz")
want pack-gzip && timed "strata layer create (gzip)#rm -f $W/s.tar.gz; $warm_tree#$STRATA layer create $DATA --compression gzip -o $W/s.tar.gz" \
      "${BASE_GZIP[@]}" \
      "tar | gzip#rm -f $W/t.tar.gz; $warm_tree#tar -C $DATA -cf - . | gzip > $W/t.tar.gz" \
      "tar | pigz#rm -f $W/t.tar.gz; $warm_tree#tar -C $DATA -cf - . | pigz > $W/t.tar.gz" \
      "umoci repack (gzip)#$prep_umoci_bundle && umoci tag --image $U/layout:base new >/dev/null && $warm_tree#umoci repack --image $U/layout:new $U/bundle"
rm -rf "$U/bundle"

echo "== unpack (${RUNS} runs each, interleaved)" >&2
[ -f $W/s.tar.zst ] || "$STRATA" layer create $DATA -o $W/s.tar.zst >/dev/null
[ -f $W/s.tar.gz ] || "$STRATA" layer create $DATA --compression gzip -o $W/s.tar.gz >/dev/null
if ! umoci stat --image "$U/layout:new" >/dev/null 2>&1; then
  bash -c "$prep_umoci_bundle" && umoci tag --image "$U/layout:base" new >/dev/null &&
    umoci repack --image "$U/layout:new" "$U/bundle" >/dev/null
fi
UNPACK_BASE_ZSTD=()
UNPACK_BASE_GZIP=()
if [ -n "${STRATA_BASE:-}" ]; then
  UNPACK_BASE_ZSTD=("strata (base build) layer apply (zstd)#rm -rf $W/out; cat $W/s.tar.zst >/dev/null#$STRATA_BASE layer apply $W/s.tar.zst $W/out")
  UNPACK_BASE_GZIP=("strata (base build) layer apply (gzip)#rm -rf $W/out; cat $W/s.tar.gz >/dev/null#$STRATA_BASE layer apply $W/s.tar.gz $W/out")
fi
want unpack-zstd && timed "strata layer apply (zstd)#rm -rf $W/out; cat $W/s.tar.zst >/dev/null#$STRATA layer apply $W/s.tar.zst $W/out" \
      "${UNPACK_BASE_ZSTD[@]}" \
      "zstd -d | tar -x#rm -rf $W/out && mkdir $W/out; cat $W/s.tar.zst >/dev/null#zstd -q -dc $W/s.tar.zst | tar -C $W/out -xf -"
want unpack-gzip && timed "strata layer apply (gzip)#rm -rf $W/out; cat $W/s.tar.gz >/dev/null#$STRATA layer apply $W/s.tar.gz $W/out" \
      "${UNPACK_BASE_GZIP[@]}" \
      "tar -xzf (gzip)#rm -rf $W/out && mkdir $W/out; cat $W/s.tar.gz >/dev/null#tar -C $W/out -xzf $W/s.tar.gz" \
      "umoci unpack (gzip)#rm -rf $W/ubundle; cat $U/layout/blobs/sha256/* >/dev/null#umoci unpack --image $U/layout:new $W/ubundle"
rm -rf "$W/out" "$W/ubundle"
if want unpack-store; then
  SS=$W/store
  rm -rf "$SS" "$W/mnt"; mkdir -p "$W/mnt"
  STRATA_ROOT=$SS "$STRATA" import --compression zstd -t bench/layer "$W/s.tar.zst" >/dev/null
  blob_warm="cat $SS/blobs/sha256/* >/dev/null"
  STORE_BASE=()
  [ -n "${STRATA_BASE:-}" ] && STORE_BASE=("strata (base build) mount, fresh snapshot#rm -rf $SS/snapshots/*; $blob_warm#STRATA_ROOT=$SS $STRATA_BASE mount --driver overlay bench/layer $W/mnt && STRATA_ROOT=$SS $STRATA_BASE umount $W/mnt")
  timed "strata mount, fresh snapshot#rm -rf $SS/snapshots/*; $blob_warm#STRATA_ROOT=$SS $STRATA mount --driver overlay bench/layer $W/mnt && STRATA_ROOT=$SS $STRATA umount $W/mnt" \
        "${STORE_BASE[@]}"
  rm -rf "$SS" "$W/mnt"
fi

# Check: strata's unpack of its own layer matches the tree (not timed).
rm -rf "$W/check" && "$STRATA" layer apply "$W/s.tar.zst" "$W/check" >/dev/null
if ! diff -r "$DATA" "$W/check" >/dev/null; then echo "MISMATCH after strata layer apply" >&2; exit 1; fi
rm -rf "$W/check"

mbs() { awk -v b="$BYTES" -v ms="$1" 'BEGIN { printf "%.0f", b / 1e6 / (ms / 1000) }'; }
fps() { awk -v f="$FILES" -v ms="$1" 'BEGIN { printf "%.0f", f / (ms / 1000) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
echo
echo "Data: $FILES entries, $((BYTES / 1000000)) MB; runs: $RUNS; medians."
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); kernel $(uname -r); $W on $(stat -f -c %T "$W") ($(findmnt -n -o SOURCE --target "$W" 2>/dev/null || echo '?')); load average before the runs: $LOAD_BEFORE."
echo "Sizes: strata zstd $(stat -c %s $W/s.tar.zst 2>/dev/null), strata zstd:chunked $(stat -c %s $W/c.tar.zst 2>/dev/null), tar|zstd $(stat -c %s $W/t.tar.zst 2>/dev/null), strata gzip $(stat -c %s $W/s.tar.gz 2>/dev/null), tar|gzip $(stat -c %s $W/t.tar.gz 2>/dev/null) bytes."
echo
echo "| operation | tool | median | MB/s | files/s | strata is faster by | CPU (user+sys) | strata uses less CPU by |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
row() { # op label baseline-label
  [ -n "${MED[$2]:-}" ] || return 0
  local ms=${MED[$2]} cpu=${CPU[$2]}
  local r="-" rc="-"
  if [ -n "${3:-}" ] && [ -n "${MED[$3]:-}" ]; then
    r=$(ratio "$ms" "${MED[$3]}"); rc=$(ratio "$cpu" "${CPU[$3]}")
  fi
  echo "| $1 | ${2//|/\\|} | ${ms} ms | $(mbs "$ms") | $(fps "$ms") | $r | ${cpu} ms | $rc |"
}
row pack "strata layer create (zstd)"
row pack "strata layer create --chunked (zstd:chunked)" "strata layer create (zstd)"
row pack "strata (base build) layer create (zstd)" "strata layer create (zstd)"
row pack "tar | zstd -T0" "strata layer create (zstd)"
row pack "tar | zstd -T0, both sha256 (diff ID + digest)" "strata layer create (zstd)"
row pack "tar | zstd -T0" "strata layer create --chunked (zstd:chunked)"
row pack "strata layer create (gzip)"
row pack "tar | gzip" "strata layer create (gzip)"
row pack "tar | pigz" "strata layer create (gzip)"
row pack "umoci repack (gzip)" "strata layer create (gzip)"
row unpack "strata layer apply (zstd)"
row unpack "zstd -d | tar -x" "strata layer apply (zstd)"
row unpack "strata layer apply (gzip)"
row unpack "tar -xzf (gzip)" "strata layer apply (gzip)"
row unpack "umoci unpack (gzip)" "strata layer apply (gzip)"
if [ -n "${STRATA_BASE:-}" ]; then
  row unpack "strata (base build) layer apply (zstd)" "strata layer apply (zstd)"
  row unpack "strata (base build) layer apply (gzip)" "strata layer apply (gzip)"
fi
row unpack-store "strata mount, fresh snapshot"
row unpack-store "strata (base build) mount, fresh snapshot" "strata mount, fresh snapshot"
echo
echo "Load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
