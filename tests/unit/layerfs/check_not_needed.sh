#!/bin/sh
# check_not_needed.sh BINARY LIB...: BINARY needs none of the shared libraries
# LIB... (sonames without version, e.g. libstdc++.so).
set -eu
bin=$1; shift
have=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
[ -n "$have" ] || { echo "readelf found no NEEDED entries in $bin" >&2; exit 1; }
for lib in "$@"; do
  if printf '%s\n' "$have" | grep -q "^$lib"; then
    echo "$bin needs $lib:" $have >&2
    exit 1
  fi
done
echo "$bin needs:" $have
