// Applying one OCI layer (a possibly compressed tar stream) onto a directory.
//
// Two modes:
//  - overlay: the target is a snapshot directory that will be an overlayfs
//    lower (or upper) layer. OCI whiteouts become overlay whiteouts: `.wh.NAME`
//    -> a 0:0 character device NAME; `.wh..wh..opq` -> the opaque xattr on
//    the directory (trusted.overlay.opaque=y, or user.overlay.opaque=y when
//    the snapshot is for an overlay mounted in a user namespace).
//  - flatten: the target is a plain root filesystem holding the layers below
//    (unpack, export, `strata layer apply`): a whiteout deletes the lower
//    entry, an opaque marker empties the directory of everything this layer
//    did not add, as Docker's applier does.
//
// Every path is resolved inside the target as Docker (containerd's applier)
// resolves it over the image's root: a symlink on an entry's parent path is
// followed inside the root whichever layer brought it (in overlay mode the
// lower_dirs are looked through: snapshot/merged_view.hpp), an absolute
// target starts at the root and ".." stops there; a directory written into
// that only a lower layer has is copied up with its owner, mode and xattrs.
// An entry is rejected, with its name and the layer's name in the message,
// when its name has a ".." component, when its parent path goes through a
// symlink whose target does not exist (Docker's MkdirAll fails there), when a
// hard link names a target with "..", or when a whiteout name is bad (`.wh.`
// alone, `.wh..`, `.wh...`).
// Xattrs that would steer overlayfs (trusted.overlay.*, user.overlay.*) are
// never taken from a layer.
#pragma once

#include "formats/tar.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace strata::snapshot {

enum class WhiteoutMode { overlay, flatten };

struct ApplyOptions {
    WhiteoutMode mode = WhiteoutMode::overlay;
    // Overlay mode: use user.overlay.* instead of trusted.overlay.* (an
    // overlay mounted inside a user namespace with -o userxattr).
    bool userxattr = false;
    // Set owners from the layer. Default: only when running as root. When
    // chown fails (an unmapped id in a user namespace) the entry keeps the
    // current owner and ApplyStats::owners_skipped counts it.
    std::optional<bool> preserve_owner;
    // Name used in messages (a digest or a path).
    std::string layer_name;
    // Overlay mode: lower directories (topmost first), the layers below this
    // one: their symlinks are followed and their directories copied up as
    // entries need them, and a hard link may find a target that this layer
    // does not contain (copied up into the snapshot first, as overlayfs would).
    std::vector<std::string> lower_dirs;
};

struct ApplyStats {
    std::uint64_t entries = 0;
    std::uint64_t files = 0;
    std::uint64_t dirs = 0;
    std::uint64_t symlinks = 0;
    std::uint64_t hardlinks = 0;
    std::uint64_t devices = 0;
    std::uint64_t fifos = 0;
    std::uint64_t whiteouts = 0;
    std::uint64_t opaque_dirs = 0;
    std::uint64_t bytes = 0; // regular-file content written
    // Things skipped because the process lacks the privilege (noted, not fatal).
    std::uint64_t owners_skipped = 0;
    std::uint64_t devices_skipped = 0;
    std::uint64_t xattrs_skipped = 0;
    formats::Compression compression = formats::Compression::none;
    std::optional<formats::LayerDigests> digests; // of the stream as read
};

// Applies the layer read from layer_fd onto target_dir (which must exist).
ApplyStats apply_layer(int layer_fd, const std::string& target_dir, const ApplyOptions& opts);
// Same, with the target given as a directory fd.
ApplyStats apply_layer_at(int layer_fd, int target_dirfd, const ApplyOptions& opts);
// Applies entries from an already open reader (the caller calls finish()).
ApplyStats apply_entries(formats::TarReader& reader, int target_dirfd, const ApplyOptions& opts);

} // namespace strata::snapshot
