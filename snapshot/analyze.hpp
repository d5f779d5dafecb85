// Wasted space across an image's layers.
//
// The efficiency score, wasted bytes and user wasted percent are computed
// exactly as dive (wagoodman/dive, dive/filetree/efficiency.go and
// dive/image/image.go) computes them, so that `--ci` thresholds mean the same
// thing in both tools:
//  - each layer is a tree of its tar entries; only its leaves are visited
//    (a directory with entries below it in the same layer is not);
//  - a visit adds the entry's tar size to its path's cumulative size and
//    keeps the smallest size seen; a whiteout `.wh.X` adds 0 when X was a
//    file in the layers below, and the sum of the sizes below X when X was an
//    explicit directory there (dive's stacked tree, which ignores opaque
//    markers and empties the metadata of directories a layer only implies);
//  - efficiency = sum of smallest sizes / sum of cumulative sizes (1 when
//    nothing was visited);
//  - wasted bytes = the cumulative size of every path visited more than once;
//  - user wasted percent = wasted bytes / the size of every layer but the
//    first, a layer's size being the sum of its entries' tar sizes.
// Two dive behaviours follow from this and are kept: files hidden by an
// opaque directory, and the files of a deleted directory, are not counted
// as waste. A whiteout of a path that was not there adds 0 (dive stops
// visiting that layer instead).
//
// Beside dive's figures, `hidden_bytes` is the exact count: the bytes of
// every regular-file version that is not visible in the final image
// (overwritten, deleted, or hidden by an opaque directory), attributed to
// the layer that wrote them.
#pragma once

#include "snapshot/layer_index.hpp"

#include <cstdint>
#include <vector>

namespace strata::snapshot {

struct PathWaste {
    std::uint32_t node = 0;
    std::uint32_t count = 0;       // how many layers touched the path
    std::uint64_t cumulative = 0;  // bytes spent on it across layers
    std::uint64_t min_size = 0;    // the smallest it was
};

struct LayerWaste {
    std::size_t layer = 0;
    std::uint64_t size = 0;         // sum of regular-file sizes in the layer
    std::uint64_t hidden_bytes = 0; // of which not visible in the final image
    std::uint64_t hidden_files = 0;
};

struct LargeFile {
    std::uint32_t node = 0;
    std::uint64_t size = 0;
    std::uint32_t layer = 0;
};

struct Analysis {
    double efficiency = 1.0;
    std::uint64_t size_bytes = 0;      // all layers
    std::uint64_t user_size_bytes = 0; // all layers but the first
    std::uint64_t wasted_bytes = 0;
    // wasted_bytes / user_size_bytes; +inf when there is waste but no user
    // layer bytes, 0 when neither.
    double wasted_user_percent = 0;
    std::uint64_t hidden_bytes = 0;
    std::uint64_t hidden_files = 0;
    std::vector<PathWaste> inefficiencies; // visited more than once, largest cumulative first
    std::vector<LayerWaste> layers;        // in layer order
    std::vector<LargeFile> largest;        // of the final image, largest first
};

// top_files: how many of the largest files to keep.
Analysis analyze_layers(const LayerIndex& index, std::size_t top_files = 20);

} // namespace strata::snapshot
