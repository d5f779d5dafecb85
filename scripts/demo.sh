#!/usr/bin/env bash
# The main job on the built-in default, offline, in a store of its own
# (./demo-store unless STRATA_ROOT is set): make the busybox base image from
# Debian's busybox-static, build examples/Dockerfiles/basics on it, run the
# result, build again (every step cached), save it as a docker-archive, load
# it back under a new name, and inspect it.
set -euo pipefail
cd "$(dirname "$0")/.."
strata=./build/cli/strata
export STRATA_ROOT=${STRATA_ROOT:-$PWD/demo-store}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$strata" bootstrap busybox -t busybox:latest
"$strata" build --progress plain -t demo/basics:latest examples/Dockerfiles/basics
"$strata" run --rm demo/basics:latest
"$strata" build --progress plain -t demo/basics:latest examples/Dockerfiles/basics
"$strata" save demo/basics:latest --format docker -o "$work/basics.tar"
"$strata" load -i "$work/basics.tar" -t demo/basics:reloaded
"$strata" images
"$strata" history demo/basics:reloaded
"$strata" inspect demo/basics:reloaded
"$strata" verify
