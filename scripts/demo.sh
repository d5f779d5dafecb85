#!/usr/bin/env bash
# The main job on the built-in default, offline: uses ./build/cli/strata.
set -euo pipefail
cd "$(dirname "$0")/.."
strata=./build/cli/strata
"$strata" version
