// Helpers for the layer tests: writing layers from entry lists, applying
// them, and building sample trees with fixed times.
#pragma once

#include "formats/tar.hpp"
#include "snapshot/layer_apply.hpp"

#include <string>
#include <sys/types.h>
#include <vector>

namespace strata::test {

struct LayerEntry {
    formats::TarEntry entry;
    std::string content;
};

formats::TarEntry file_entry(const std::string& path, std::uint32_t mode = 0644);
formats::TarEntry dir_entry(const std::string& path, std::uint32_t mode = 0755);
formats::TarEntry symlink_entry(const std::string& path, const std::string& target);
formats::TarEntry hardlink_entry(const std::string& path, const std::string& target);

// Writes a layer file made of entries (in the order given).
formats::LayerDigests write_layer(const std::string& path, const std::vector<LayerEntry>& entries,
                                  formats::Compression c = formats::Compression::none);

snapshot::ApplyStats apply(const std::string& layer, const std::string& dir,
                           snapshot::WhiteoutMode mode, bool userxattr = false);

// Sets a path's mtime (not following symlinks).
void set_mtime(const std::string& path, std::int64_t sec);
void set_xattr(const std::string& path, const std::string& name, const std::string& value);
std::string get_xattr(const std::string& path, const std::string& name);

// A sample tree: files, nested directories, an empty and a read-only
// directory, setuid file, symlinks (relative, absolute, dangling), hard
// links, a FIFO, user xattrs, fixed mtimes.
void build_sample_tree(const std::string& root);

// Lists a tar layer as "type path[ -> link]" lines.
std::vector<std::string> list_layer(const std::string& path);

} // namespace strata::test
