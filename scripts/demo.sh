#!/usr/bin/env bash
# The main job on the built-in default, offline, in a store of its own
# (./demo-store unless STRATA_ROOT is set): make the busybox base image from
# Debian's busybox-static, save it as a docker-archive, load it back under a
# new name, and inspect it.
set -euo pipefail
cd "$(dirname "$0")/.."
strata=./build/cli/strata
export STRATA_ROOT=${STRATA_ROOT:-$PWD/demo-store}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$strata" bootstrap busybox -t busybox:latest
"$strata" save busybox:latest --format docker -o "$work/busybox.tar"
"$strata" load -i "$work/busybox.tar" -t demo/busybox:reloaded
"$strata" images
"$strata" inspect demo/busybox:reloaded
"$strata" verify
