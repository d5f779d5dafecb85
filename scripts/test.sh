#!/usr/bin/env bash
# The whole test suite: installs the dependencies and peer tools, builds,
# starts a Docker engine for the interoperability tests, and runs every
# CTest entry. Privileged groups the machine cannot run are reported as
# Skipped, not Passed.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
bash scripts/install-deps.sh --test
bash scripts/build.sh
bash scripts/dockerd.sh up
trap 'bash "$top/scripts/dockerd.sh" down' EXIT
cd "${STRATA_BUILD_DIR:-build}"
ctest --output-on-failure -j"$(nproc)" --timeout 1200
