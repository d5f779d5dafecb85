// `--init`: Docker's docker-init (tini) as the container's PID 1, from a
// sealed in-memory copy.
//
// PID 1 of a container is reachable from inside through /proc/1/exe. Were it
// a host file (strata's own binary forked, or /usr/bin/tini-static itself),
// a process in the container could open that link for writing and replace
// the host's program (runc's CVE-2019-5736). So the init is copied into a
// memfd sealed against every change (as runc copies itself since that CVE)
// and executed from the fd (fexecve): the container sees /memfd:docker-init,
// which no one can write, and no host path at all.
#pragma once

#include "util/fd.hpp"

namespace strata::runner {

// Debian's static tini (package tini), as docker-init.
inline constexpr const char* k_docker_init_path = "/usr/bin/tini-static";
// argv[0] the container sees, as Docker shows it (`/sbin/docker-init -- CMD`).
inline constexpr const char* k_docker_init_name = "/sbin/docker-init";

// A sealed (no write, grow, shrink or further seals), close-on-exec memfd
// holding k_docker_init_path. Throws StartError (125) naming the path and the
// package when it is missing, SysError for any other failure.
UniqueFd sealed_docker_init();

} // namespace strata::runner
