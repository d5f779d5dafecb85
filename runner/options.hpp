// Docker's spellings of run options, parsed into runner types, so that
// `strata run` and its tests share one reading of them. Each throws
// UsageError naming the option and the value.
#pragma once

#include "runner/runner.hpp"

#include <string_view>

namespace strata::runner {

// -v / --volume SRC:DST[:OPTS], OPTS a comma list of ro, rw (default rw).
// SRC must be an absolute host path (named volumes do not exist here).
Mount parse_volume(std::string_view value);

// --tmpfs DST[:OPTS], OPTS passed to tmpfs (e.g. "size=64m,mode=1777"); "ro"
// among them makes it read-only.
Mount parse_tmpfs(std::string_view value);

// --ulimit NAME=SOFT[:HARD] (HARD defaults to SOFT; -1 or "unlimited" for
// no limit), NAME one of Docker's: core, cpu, data, fsize, locks, memlock,
// msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack, as.
Rlimit parse_ulimit(std::string_view value);

// --network none|host.
Network parse_network(std::string_view value);

} // namespace strata::runner

namespace strata::runner {

// --device HOST[:CONTAINER[:PERMS]] (Docker's reading: a second part made
// only of r, w and m is PERMS); PERMS default rwm.
Device parse_device(std::string_view value);

} // namespace strata::runner
