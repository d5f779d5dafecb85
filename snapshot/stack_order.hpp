// The one layer-order convention. Lists of layers and of their snapshot
// directories are bottom first everywhere in strata, as an image's
// manifest lists its layers (Store::ensure_snapshots, the builder's stage
// layers, RootView, Workspace). Overlayfs, strata's FUSE union
// (layerfs::MountSpec::lowers, OverlaySpec::lowers) and layer apply's
// lower_dirs take them topmost first: top_first() is the conversion, at
// the point where such a list is handed over.
#pragma once

#include <string>
#include <vector>

namespace strata::snapshot {

inline std::vector<std::string> top_first(const std::vector<std::string>& bottom_first) {
    return {bottom_first.rbegin(), bottom_first.rend()};
}

} // namespace strata::snapshot
