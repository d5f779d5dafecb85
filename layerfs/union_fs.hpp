// strata's FUSE union filesystem, on libfuse3's low-level API.
//
// It merges a stack of directories in overlayfs form (whiteouts are 0:0
// character devices, opaque directories carry trusted.overlay.opaque=y or
// user.overlay.opaque=y; the OCI encoding ".wh.NAME" / ".wh..wh..opq" is
// understood too) the way kernel overlayfs does, so it works where overlayfs
// cannot: rootless, nested, old kernels.
//
// Read-only (no upper): layers never change, so entries, attributes, negative
// lookups, symlinks and directory listings are cached by the kernel for ever,
// and files are read without a FUSE open (no_open) with keep_cache.
// Writable (upper + work): copy-up on write (data, mode, owner, xattrs,
// times), whiteouts on delete (0:0 char devices; ".wh.NAME" files when mknod
// is not permitted), opaque directories on rmdir+mkdir, rename of files and of
// populated directories across layers (the directory tree is copied up and
// made opaque; no EXDEV), hard links, symlinks, setattr, xattrs.
//
// Not supported: RENAME_EXCHANGE and RENAME_WHITEOUT (EINVAL), overlay
// redirect/metacopy xattrs in the layers (strata mounts with both off), file
// locks (the kernel handles them locally). Hard links across a copy-up are
// broken as with overlayfs index=off.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace strata::layerfs {

struct UnionOptions {
    std::vector<std::string> lowers; // top-most first; at least one
    std::string upper;               // empty: read-only
    std::string work;                // required with upper, same filesystem as upper
    // Entry/attribute cache timeout in seconds; default: for ever when
    // read-only, 1 s when writable.
    std::optional<double> timeout;
    // Let other users see the mount (allow_other). Default: when run as root.
    std::optional<bool> allow_other;
    std::string fsname = "strata"; // the "source" column of mountinfo
};

// Mounts the union on target and serves it until it is unmounted (or
// SIGTERM/SIGINT/SIGHUP, which unmount it). With daemonize, the process
// forks once the mount is live and the original process exits 0 (like
// fuse-overlayfs); the child serves and returns when unmounted. Returns 0
// after a clean unmount. Throws UsageError/SysError for bad layers or a
// failed mount, before anything is mounted.
int serve_union(const UnionOptions& opts, const std::string& target, bool daemonize);

// Parses a fuse-overlayfs style colon-separated list ("A:B:C", top-most first;
// "\:" escapes a colon, "\\" a backslash).
std::vector<std::string> split_layer_list(const std::string& list);

} // namespace strata::layerfs
