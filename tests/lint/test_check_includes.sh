#!/usr/bin/env bash
# The include lint must reject an upward include and accept a downward one.
set -u
lint=$(dirname "$0")/check_includes.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/util" "$tmp/formats"
printf '#include "util/fd.hpp"\n' > "$tmp/formats/a.cpp"
printf '#include "util/error.hpp"\n' > "$tmp/util/b.cpp"
if ! "$lint" "$tmp" >/dev/null; then echo "FAIL: lint rejected a downward include"; exit 1; fi
printf '#include "formats/digest.hpp"\n' > "$tmp/util/c.cpp"
out=$("$lint" "$tmp")
if [ $? -eq 0 ]; then echo "FAIL: lint accepted util including formats"; exit 1; fi
grep -q 'util/c.cpp:1: util may not include "formats/digest.hpp"' <<<"$out" || { echo "FAIL: message: $out"; exit 1; }
mkdir -p "$tmp/runner"; rm "$tmp/util/c.cpp"
printf '#include "layerfs/mount.hpp"\n' > "$tmp/runner/r.cpp"
if "$lint" "$tmp" >/dev/null; then echo "FAIL: lint accepted runner including layerfs"; exit 1; fi
echo "ok"
