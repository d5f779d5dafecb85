#!/usr/bin/env bash
# Probe for the registry server tests. Usage: probe_servers.sh NEEDS CMD...
# NEEDS is "registry" (docker-registry, htpasswd) or "skopeo" (the same plus
# skopeo). Exits 77 (CTest: Skipped) naming what is missing; runs CMD otherwise.
set -u
needs=$1; shift
skip() { echo "SKIPPED: $*"; exit 77; }
command -v docker-registry >/dev/null || skip "needs docker-registry (apt-get install docker-registry)"
command -v htpasswd >/dev/null || skip "needs htpasswd (apt-get install apache2-utils)"
if [ "$needs" = skopeo ]; then
  command -v skopeo >/dev/null || skip "needs skopeo (apt-get install skopeo)"
fi
exec "$@"
