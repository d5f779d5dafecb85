// An image's layers applied one over the other into a plain directory, or
// written out as one flat root-filesystem tar: what `strata unpack`, `strata
// export` and `strata build --output type=local|tar` produce.
#pragma once

#include "snapshot/store.hpp"

#include <string>

namespace strata::snapshot {

// Applies every layer of the image, flattened (whiteouts remove what they
// hide), onto dir, which must exist. Every path stays inside dir; a layer
// whose bytes do not hash to its digest is an error naming it.
void flatten_image(Store& store, const Image& img, const std::string& dir);

// Writes the flattened root filesystem of the image as an uncompressed tar
// to fd (staged in a temporary directory of the store).
void write_rootfs_tar(Store& store, const Image& img, int fd);

} // namespace strata::snapshot
