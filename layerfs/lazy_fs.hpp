// A lazy image: the merged tree of an image's layers served read-only over
// FUSE straight from the compressed layer blobs in the store, through each
// blob's content index (snapshot/lazy_index.hpp). Nothing is unpacked.
//
// The tree is the image's layers replayed with OCI whiteout semantics
// (snapshot::MergedTree): what a kernel overlay of the unpacked snapshots
// shows, without whiteouts or opaque markers. Hard links are one inode with
// their link count; a directory's link count is 2 + its subdirectories.
// Layers never change, so the kernel caches entries, attributes and file
// pages for ever (keep_cache).
//
// Used as the single lower directory of a kernel overlay, it gives `strata
// run` and `strata mount --writable` their writable layer unchanged.
//
// The program is strata-lazy (layerfs/strata_lazy_main.cpp): it links the
// snapshot library (zlib, zstd, libarchive), which strata-overlay does not.
#pragma once

#include "snapshot/partial_blob.hpp"

#include <functional>
#include <optional>
#include <string>

namespace strata::layerfs {

struct LazyOptions {
    std::string store;    // the store's root
    std::string manifest; // the image's manifest digest ("sha256:...")
    std::string fsname = "strata-lazy";
    // suid and dev on the mount (root only): for a container's lower layer,
    // where setuid binaries must work as on the unpacked image.
    bool suid_dev = false;
    std::optional<bool> allow_other; // default: when run as root
    // How to fetch the missing bytes of a lazily pulled layer (partial/,
    // snapshot/partial_blob.hpp): strata-lazy's is registry::remote_fetch.
    // Unset: an image with such a layer is refused.
    std::function<snapshot::PartialBlob::Fetch(const snapshot::PartialBlob&)> remote;
};

// Loads the indexes (building missing ones), mounts on target and serves
// until unmounted. With daemonize, forks once the mount answers and the
// parent exits 0. Throws before mounting when the image cannot be served
// lazily (a layer that is not seekable, a hard link to nothing).
int serve_lazy(const LazyOptions& opts, const std::string& target, bool daemonize);

} // namespace strata::layerfs
