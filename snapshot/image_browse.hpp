// Reading an image's files without unpacking it (strata ls, cat, cp, diff,
// analyze): its layer blobs streamed into a LayerIndex, file contents read
// back out of the blobs, and the entries that copy a subtree out of the
// merged tree (Docker's cp naming, hard links for shared contents).
#pragma once

#include "formats/tar.hpp"
#include "snapshot/layer_index.hpp"
#include "snapshot/store.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace strata::snapshot {

// Streams layers [0, count) of image into index, checking each layer's diff ID
// against the config. Throws Error naming the layer on a mismatch; returns index.
LayerIndex& index_image_layers(const Store& store, const Image& image, LayerIndex& index,
                               std::size_t count);

// Reads the contents of regular-file records out of image's layer blobs, one
// pass over each layer that holds some. records must be sorted (layer order,
// then stream order: record numbers are); copy(record, reader) is called with
// the reader positioned at that record's data. Throws Error when a blob no
// longer holds an entry the index saw.
void read_record_contents(const Store& store, const Image& image, const LayerIndex& index,
                          const std::vector<std::uint32_t>& records,
                          const std::function<void(std::uint32_t, formats::TarReader&)>& copy);

// One entry of a copy out of a merged tree.
struct CopyItem {
    // Named under the copy's name; a regular file carries the metadata (and
    // size) of its data record; implied directories are 0755; xattrs as the
    // layer has them.
    formats::TarEntry entry;
    // The record to fill a regular file from: set on the first copy of
    // non-empty content (later ones are hard links to it).
    std::optional<std::uint32_t> content;
};

// node and everything below it in tree, parents first, children by name.
// Entry paths are name + "/" + the path below node (name alone for node;
// with an empty name, the path below node). Files sharing a data record
// become hard links of the first. A hard link whose target is missing from
// the image throws Error when refuse_dangling_links, else is an empty file
// with the link's own metadata.
std::vector<CopyItem> plan_tree_copy(const MergedTree& tree, std::uint32_t node,
                                     const std::string& name, bool refuse_dangling_links);

} // namespace strata::snapshot
