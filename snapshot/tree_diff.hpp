// Comparing two file trees (an image's merged tree, one layer's own entries,
// or a directory on disk) and two image configs.
//
// A tree is first turned into a TreeListing: one FileMeta per path, sorted
// by path. Hard links are listed as regular files carrying their target's
// content and metadata, as they appear once unpacked, so an image compares
// equal to the directory it unpacks to. The root directory itself is not
// listed (its metadata is rarely in layers).
//
// What counts as a change: type, content (SHA-256), size, mode (permission
// bits with setuid/setgid/sticky), owner (uid:gid), symlink target, device
// numbers and xattrs; mtime too unless the comparison is semantic. Semantic
// mode (as diffoci --semantic) also ignores the config's created time and
// history, and does not compare layer digests (which change with tar order
// and timestamps).
#pragma once

#include "formats/oci.hpp"
#include "formats/tar.hpp"
#include "snapshot/layer_index.hpp"
#include "util/sha256.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace strata::snapshot {

struct FileMeta {
    formats::EntryType type = formats::EntryType::file;
    std::uint32_t mode = 0;
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
    std::int64_t mtime_sec = 0;
    std::uint32_t mtime_nsec = 0;
    std::uint64_t size = 0;
    std::string link; // symlink target
    std::uint32_t devmajor = 0;
    std::uint32_t devminor = 0;
    std::map<std::string, std::string> xattrs;
    std::optional<Sha256::Bytes> content; // regular files
    std::optional<std::size_t> layer;     // which layer it came from (images)
};

struct TreeListing {
    std::vector<std::pair<std::string, FileMeta>> entries; // "a/b/c", sorted by path
};

// The merged tree (the index must hash contents for content comparison).
TreeListing listing_of(const MergedTree& tree);
// One layer's own entries, as stored: whiteouts appear as ".wh.NAME" files
// and opaque markers as ".wh..wh..opq".
TreeListing listing_of_layer(const LayerIndex& index, std::size_t layer);
// A directory on disk (not following symlinks; only the xattrs a layer made
// from it would carry are listed, as formats/layer_xattrs.hpp decides).
TreeListing listing_of_directory(const std::string& dir);

enum class ChangeType { added, removed, modified };

struct FileChange {
    std::string path;
    ChangeType change = ChangeType::modified;
    // For modified: "type", "content", "size", "mode", "owner", "symlink",
    // "device", "xattrs", "mtime".
    std::vector<std::string> what;
    std::optional<FileMeta> a;
    std::optional<FileMeta> b;
};

struct DiffOptions {
    bool semantic = false;
};

std::vector<FileChange> diff_listings(const TreeListing& a, const TreeListing& b,
                                      const DiffOptions& opts);

struct ConfigChange {
    std::string field; // "Env[PATH]", "Cmd", "Labels[maintainer]", "ExposedPorts[80/tcp]", ...
    std::optional<std::string> a; // nullopt: absent on that side
    std::optional<std::string> b;
};

std::vector<ConfigChange> diff_configs(const formats::ImageConfig& a,
                                       const formats::ImageConfig& b, const DiffOptions& opts);

std::string_view type_name(formats::EntryType t);

} // namespace strata::snapshot
