#!/usr/bin/env bash
# Capability probes for privileged test groups. Usage: probe.sh CAP CMD...
# When CAP is missing, prints why and exits 77, which CTest reports as
# Skipped (SKIP_RETURN_CODE 77); otherwise runs CMD.
set -u
cap=$1; shift
skip() { echo "SKIPPED: $*"; exit 77; }
case "$cap" in
  root)
    [ "$(id -u)" -eq 0 ] || skip "needs root (run the suite as root)" ;;
  userns)
    unshare --user --map-root-user true 2>/dev/null || skip "needs unprivileged user namespaces (sysctl user.max_user_namespaces > 0)" ;;
  subuid)
    [ "$(id -u)" -eq 0 ] || skip "needs root (to create a test user with /etc/subuid ranges)"
    command -v newuidmap >/dev/null && command -v newgidmap >/dev/null || skip "needs newuidmap/newgidmap (apt-get install uidmap)"
    command -v useradd >/dev/null || skip "needs useradd"
    unshare --user --map-root-user true 2>/dev/null || skip "needs unprivileged user namespaces (sysctl user.max_user_namespaces > 0)" ;;
  rootlessnet)
    [ "$(id -u)" -eq 0 ] || skip "needs root (to make a private network namespace and switch to nobody)"
    command -v pasta >/dev/null || command -v slirp4netns >/dev/null ||
      skip "needs pasta (apt-get install passt) or slirp4netns (apt-get install slirp4netns)"
    [ -c /dev/net/tun ] || skip "needs /dev/net/tun"
    unshare --user --map-root-user true 2>/dev/null || skip "needs unprivileged user namespaces (sysctl user.max_user_namespaces > 0)" ;;
  overlay)
    [ "$(id -u)" -eq 0 ] || skip "needs root for kernel overlayfs"
    grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null
    grep -qw overlay /proc/filesystems || skip "kernel has no overlayfs" ;;
  fuse)
    [ -c /dev/fuse ] || skip "needs /dev/fuse"
    [ -r /dev/fuse ] && [ -w /dev/fuse ] || skip "needs read/write access to /dev/fuse"
    [ "$(id -u)" -eq 0 ] || command -v fusermount3 >/dev/null || skip "needs root or fusermount3" ;;
  skopeo)
    command -v skopeo >/dev/null || skip "needs skopeo (apt-get install skopeo)" ;;
  umoci)
    command -v umoci >/dev/null || skip "needs umoci (apt-get install umoci)" ;;
  buildah)
    command -v buildah >/dev/null || skip "needs buildah (apt-get install buildah)" ;;
  docker)
    command -v docker >/dev/null || skip "needs docker (apt-get install docker.io)"
    docker info >/dev/null 2>&1 || skip "needs a running Docker daemon (dockerd)" ;;
  *) echo "probe.sh: unknown capability $cap" >&2; exit 2 ;;
esac
exec "$@"
