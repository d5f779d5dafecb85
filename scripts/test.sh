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
status=0
# The tests run in a network namespace of their own (loopback up, forwarding
# on: per namespace), so that containers on strata's default bridge never
# touch the host's network; the Docker engine above stays outside and is
# reached through its unix socket. Without the right to make one (not root),
# as before: strata then runs containers without a bridge anyway.
in_netns() {
  if unshare -n true 2>/dev/null; then
    unshare -n sh -c 'ip link set lo up && sysctl -qw net.ipv4.ip_forward=1 && exec "$@"' in_netns "$@"
  else
    "$@"
  fi
}
(cd "${STRATA_BUILD_DIR:-build}" && in_netns ctest --output-on-failure -j"$(nproc)" --timeout 1200) || status=$?

# The unit tests of the bottom libraries (util, formats, snapshot with its
# inspect machinery, the Dockerfile frontend) once more under ASan+UBSan, in
# a build directory of their own that builds only those test binaries. The
# libraries above them (layerfs, runner, builder, cli) are left out to keep
# CI's run within its time: their tests need the whole strata binary built a
# second time (and so do the unit tests that run the strata binary: "from
# the command line"). Leaks inside libarchive itself are suppressed
# (tests/lsan.supp). STRATA_SANITIZE_TESTS=0 skips this step.
if [ "${STRATA_SANITIZE_TESTS:-1}" != 0 ]; then
  asan=${STRATA_ASAN_BUILD_DIR:-build-asan}
  cmake -S . -B "$asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSTRATA_SANITIZE=ON >/dev/null
  cmake --build "$asan" -j"$(nproc)" --target \
    strata_util_tests strata_formats_tests strata_snapshot_tests strata_inspect_tests \
    strata_dockerfile_tests
  (cd "$asan" &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LSAN_OPTIONS=suppressions=$top/tests/lsan.supp:print_suppressions=0 \
    in_netns ctest --output-on-failure -j"$(nproc)" --timeout 1200 \
      -R '^(util|formats|snapshot|inspect|dockerfile)\.' \
      -E 'from the command line') || status=$?
fi
exit "$status"
