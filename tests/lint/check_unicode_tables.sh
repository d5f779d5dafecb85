#!/usr/bin/env bash
# Fails when util/unicode_tables.inc is not what util/gen_unicode_tables.py
# makes of Debian's unicode-data (/usr/share/unicode/UnicodeData.txt, Unicode
# 15.0, as Go and BuildKit). Skipped (77) when unicode-data is not installed.
# Usage: check_unicode_tables.sh [SOURCE_ROOT] [UnicodeData.txt]
set -u
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
data=${2:-/usr/share/unicode/UnicodeData.txt}
if [ ! -r "$data" ]; then
  echo "SKIP: $data is missing (apt-get install unicode-data)"
  exit 77
fi
generated=$(python3 "$root/util/gen_unicode_tables.py" "$data") || exit 1
if ! diff -u "$root/util/unicode_tables.inc" <(printf '%s\n' "$generated"); then
  echo "util/unicode_tables.inc is stale: python3 util/gen_unicode_tables.py > util/unicode_tables.inc"
  exit 1
fi
