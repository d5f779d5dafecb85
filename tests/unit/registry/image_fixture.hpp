// Builds small images straight into a store for the registry tests: layers
// are uncompressed ustar archives of pseudo-random files, so that every
// tool (skopeo, docker-registry) accepts them and equal seeds give equal bytes.
#pragma once

#include "snapshot/store.hpp"

#include <cstddef>
#include <string>

namespace strata::test {

// A one-file ustar archive of `size` pseudo-random bytes (seeded).
std::string make_tar_layer(const std::string& file_name, std::size_t size, unsigned seed);

// Puts an image of `layers` layers of `layer_size` bytes into the store and
// names it `name`; returns the manifest descriptor.
formats::Descriptor make_image(snapshot::Store& store, const std::string& name, int layers,
                               std::size_t layer_size, unsigned seed);

// The bytes of a blob in the store.
std::string blob_bytes(const snapshot::Store& store, const formats::Digest& d);

// Files left in the store's tmp/ directory (should be none after any pull).
int tmp_entries(const snapshot::Store& store);

} // namespace strata::test
