#!/usr/bin/env bash
# Reproducible builds: with SOURCE_DATE_EPOCH, the same Dockerfile and
# context built at different times, from different directories, into
# different stores, give byte-identical manifests, configs and layers.
. "$(dirname "$0")/lib.sh"
[ -x /bin/busybox ] || skip "needs /bin/busybox (apt-get install busybox-static)"
EX=$(cd "$(dirname "$0")/../../examples/Dockerfiles" && pwd)
export SOURCE_DATE_EPOCH=1700000000

build_in() { # build_in STORE CONTEXT-COPY EXAMPLE -> manifest digest
  local store=$1 ctx=$2 ex=$3
  rm -rf "$ctx" && mkdir -p "$(dirname "$ctx")" && cp -r "$EX/$ex" "$ctx"
  STRATA_ROOT=$store strata bootstrap busybox >/dev/null || fail "bootstrap"
  STRATA_ROOT=$store strata build --progress quiet -t repro "$ctx" >/dev/null 2>"$WORK/err" ||
    { cat "$WORK/err" >&2; fail "build $ex in $store"; }
  # The manifest digests the store's index.json names (busybox's and ours).
  grep -o '"sha256:[0-9a-f]*"' "$store/index.json" | tr -d '"' | sort | tr '\n' ' '
}
for ex in basics multistage heredoc user-workdir; do
  a=$(build_in "$WORK/s1-$ex" "$WORK/a/ctx-$ex" "$ex")
  sleep 1.1 # different wall-clock seconds for file mtimes and history
  b=$(build_in "$WORK/s2-$ex" "$WORK/b/deeper/ctx-$ex" "$ex")
  [ -n "$a" ] || fail "no manifest for $ex"
  assert_eq "$a" "$b" "$ex: the manifests of two builds differ"
  # Same manifest digest means the same config and layer digests; check the
  # blob sets too.
  la=$(cd "$WORK/s1-$ex/blobs/sha256" && ls | sort | tr '\n' ' ')
  lb=$(cd "$WORK/s2-$ex/blobs/sha256" && ls | sort | tr '\n' ' ')
  assert_eq "$la" "$lb" "$ex: the blobs of two builds differ"
done
echo ok
