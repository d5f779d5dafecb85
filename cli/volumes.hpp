// The selections of `strata volume ls` and `volume prune`, shared with
// the API's /volumes (cli/serve/volumes.cpp).
#pragma once

#include "containers/volumes.hpp"

#include <string>
#include <vector>

namespace strata::cli {

// volume ls's volumes (in Docker's natural order of names) that the filters
// select: dangling=true|false, name=REGEX, label=K[=V], label!=K[=V],
// driver=D ("key=value" strings; values of one key ORed, keys ANDed,
// every label must match). UsageError for another key or a bad value.
std::vector<containers::Volume> list_volumes(const containers::VolumeStore& volumes,
                                             const std::vector<std::string>& filters);
// Whether prune's filters say all=true (UsageError for a filter prune does
// not take: label, label!, all only).
bool prune_all_filter(const std::vector<std::string>& filters);
// volume prune: removes the unused volumes (the anonymous ones only unless
// all) that the label filters select.
containers::VolumeStore::PruneResult
prune_volumes(containers::VolumeStore& volumes, const std::vector<std::string>& filters, bool all);

} // namespace strata::cli
