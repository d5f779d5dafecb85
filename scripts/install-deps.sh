#!/usr/bin/env bash
# Installs what strata needs on Debian 12, as root. With --test it also
# installs the peer tools the interoperability tests run against.
set -euo pipefail
build_pkgs=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libarchive-dev libssl-dev libzstd-dev zlib1g-dev
  liblzma-dev liblz4-dev libbz2-dev  # what libarchive.a needs linked in (STRATA_STATIC_DEPS)
  libfuse3-dev fuse3 libcli11-dev catch2 nlohmann-json3-dev libfmt-dev
  libcurl4-openssl-dev busybox-static util-linux python3
  libseccomp-dev  # the runner's seccomp filters (Docker's default profile, --security-opt seccomp=)
)
build_pkgs+=(libnl-route-3-dev)  # network/: bridges, veth pairs, addresses and routes over rtnetlink
build_pkgs+=(libnftables-dev)  # network/: NAT and published ports as an nftables table of strata's own
build_pkgs+=(libisal-dev)  # gzip layers decoded by ISA-L's igzip (libisal2, dlopen'd; zlib without it)
build_pkgs+=(unicode-data)  # util/gen_unicode_tables.py: UnicodeData.txt (Unicode 15.0) for util/unicode_tables.inc
build_pkgs+=(libxxhash-dev)  # formats/zstd_frames.cpp: XXH64, the checksum of zstd frames read in place
build_pkgs+=(libjemalloc-dev)  # cli/allocator.cpp: the strata command's allocator, with transparent huge pages
build_pkgs+=(libboost-dev)  # api/: Boost.Beast, the HTTP of strata serve (header-only)
build_pkgs+=(tini)  # run --init: /usr/bin/tini-static is docker-init (PID 1, from a sealed memfd)
test_pkgs=(
  skopeo umoci buildah docker-registry apache2-utils zstd pigz clang
  docker.io
)
test_pkgs+=(curl python3-docker)  # e2e.api_cli: the raw HTTP answers of strata serve; docker-py as a client
test_pkgs+=(docker-compose)  # e2e.api_compose: Debian's docker-compose 1.29 against strata serve
test_pkgs+=(fuse-overlayfs)  # bench/mount.sh: the FUSE union strata-overlay is measured against
test_pkgs+=(iproute2 passt slirp4netns)  # networking tests: ip(8) to check what is left; rootless networks
test_pkgs+=(nftables)  # e2e.ports: nft(8) checks what strata leaves in the ruleset
test_pkgs+=(openssl)  # the registry TLS test and e2e.api_tls make their certificates
test_pkgs+=(systemd)  # e2e.api_tls: systemd-socket-activate passes strata serve its sockets (fd://)
test_pkgs+=(keyutils)  # tests/security: keyctl puts a key in the session keyring a container must not read
test_pkgs+=(uidmap)  # runner [subuid] tests: newuidmap/newgidmap map /etc/subuid ranges
test_pkgs+=(libsubid4)  # runner tests: libsubid's ranges equal the /etc/subuid parser's (strata dlopens it)
test_pkgs+=(bzip2 xz-utils)  # ADD of bzip2/xz archives (builder unit tests, build_features)
pkgs=("${build_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then
  pkgs+=("${test_pkgs[@]}")
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
