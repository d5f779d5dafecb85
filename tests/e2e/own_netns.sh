# Sourced first by the networking tests, before lib.sh: re-executes the
# calling script in a network namespace of its own (loopback up), so that
# nothing it builds or sends reaches the host's network; skips (77) where
# one cannot be made. The caller's arguments go along.
if [ -z "${STRATA_E2E_OWN_NETNS-}" ]; then
  command -v unshare >/dev/null || { echo "SKIPPED: needs unshare (util-linux)"; exit 77; }
  command -v ip >/dev/null || { echo "SKIPPED: needs ip (apt-get install iproute2)"; exit 77; }
  unshare -n true 2>/dev/null || { echo "SKIPPED: needs unshare -n (root)"; exit 77; }
  exec env STRATA_E2E_OWN_NETNS=1 unshare -n bash "$0" "$@"
fi
ip link set lo up
