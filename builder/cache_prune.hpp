// Pruning the build cache: docker builder prune (and the build cache part of
// docker system prune, POST /build/prune) on the store's cache/ directory.
//
// What a record holds on to is its step's layer blob and snapshot (gc keeps
// whatever a record names). Without `all`, only the dangling records go:
// those whose layer is no layer of any image in the store (an image that was
// removed, a build whose result was never tagged or was replaced). With
// `all`, every record goes, and with them the remembered inputs of steps
// (cache/explain, for --explain) and the probe records a rebuild's COPY uses
// to find its previous result. Removed records' layers are then collected by
// gc, whose reclaimed bytes are the figure reported.
#pragma once

#include "snapshot/store.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace strata::builder {

struct CachePruneOptions {
    bool all = false;
    // Only records last written before this time (Unix seconds): docker's
    // --filter until=.
    std::optional<std::int64_t> until;
    // docker's --keep-storage: of the records that may go, the oldest go
    // first, only while the layers all records name weigh more than this.
    std::optional<std::uint64_t> keep_storage;
};

struct CachePruneResult {
    std::vector<std::string> removed; // record keys (hex), sorted
    std::uint64_t reclaimed = 0;      // bytes gc freed afterwards
};

CachePruneResult prune_build_cache(snapshot::Store& store, const CachePruneOptions& opts);

} // namespace strata::builder
