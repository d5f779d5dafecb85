// docker builder prune's filters, shared by `strata builder prune`, `strata
// system prune` and POST /build/prune.
#pragma once

#include "builder/cache_prune.hpp"

#include <string>
#include <vector>

namespace strata::cli {

// until=TIME (a Go duration ago, RFC 3339, or Unix seconds, as docker reads
// it) is the only filter the build cache takes; others are a UsageError
// naming them, as dockerd's "invalid filter".
builder::CachePruneOptions build_cache_prune_options(const std::vector<std::string>& filters,
                                                     bool all);

} // namespace strata::cli
