// Making OCI layers from directories.
//
//  - write_upper_layer: from an overlayfs upper directory (the writable layer
//    of a build step). Only the upper directory is walked, so the cost is
//    O(changes). Overlay whiteouts (0:0 character devices, or zero-size files
//    with the overlay.whiteout xattr) become `.wh.NAME`; opaque directories
//    (trusted.overlay.opaque=y or user.overlay.opaque=y) get a
//    `.wh..wh..opq` entry right after the directory.
//  - write_diff_layer: from the difference between a directory and a parent
//    directory (or the whole directory when there is no parent): entries
//    added, changed (type, content, mode, owner, mtime, xattrs, symlink
//    target, device number) or removed (-> `.wh.NAME` whiteouts).
//
// Both walk directories in sorted byte order (Go's filepath.Walk order, as
// Docker and BuildKit do), emit a changed entry's parent directories before
// it, turn repeated (dev, ino) regular files into hard links, and write the
// entries with formats::TarWriter (deterministic PAX). What goes into the
// layer's identity: mtimes are truncated to whole seconds (as Docker does)
// and clamped when TarWriter::Options::clamp_mtime is set; atime and ctime
// never; uname/gname are left empty (numeric ids only, as BuildKit); the
// xattrs kept are those Docker and buildah write (formats/layer_xattrs.hpp:
// security.capability as revision 2, security.ima, user.* but overlayfs'
// own), never host labels such as security.selinux.
#pragma once

#include "formats/tar.hpp"
#include "formats/zstd_chunked.hpp"
#include "util/error.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <unordered_map>
#include <utility>

namespace strata::snapshot {

struct DiffStats {
    std::uint64_t entries = 0;
    std::uint64_t files = 0;
    std::uint64_t bytes = 0; // regular-file content
    std::uint64_t whiteouts = 0;
    std::uint64_t opaque_dirs = 0;
    std::uint64_t hardlinks = 0;
};

// Regular files of an upper directory that are hard links to files of the
// snapshot the previous layer (ChunkedPack's) was made from, files that
// layer gives content and no extended attributes (a COPY's unchanged files,
// builder/copy_reuse.hpp): tar path -> that inode's lstat as the link left
// it (st_dev, st_ino say which inode). Snapshots are immutable, so such an
// inode holds the previous layer's bytes: the zstd:chunked writer takes its
// frames from the previous layer (ChunkedWriter::add_linked) and neither
// opens the file nor reads its extended attributes, and the upper
// directory's walk takes its lstat from here (nothing changes the upper
// directory between the links and the pack).
using LinkedFiles = std::unordered_map<std::string, struct stat>;

// For zstd:chunked layers (opts.chunked with zstd): optionally a previous
// layer whose frames the writer may reuse for unchanged file contents
// (ChunkedWriter::reuse_from), and what the writer reports.
struct ChunkedPack {
    int old_blob_fd = -1; // not owned
    const formats::ChunkedToc* old_toc = nullptr;
    std::string old_what;
    const LinkedFiles* linked = nullptr;                  // files whose frames old_toc gives
    std::vector<formats::HashCheckpoint> old_checkpoints; // the old blob's, when known
    std::uint64_t linked_files = 0;                // set by the writer: of those, files taken so
    std::optional<formats::ChunkedLayerInfo> info; // set by the writer
};

// Content digests some regular files of a layer must have, by tar path
// ("data/a.bin" -> "sha256:<hex>"): the plain writer (tar, gzip, zstd; not
// zstd:chunked) hashes those files' bytes as it writes them and throws
// ContentMismatch naming the first that differs. The builder checks so the
// files a COPY linked from a previous snapshot.
using ContentChecks = std::map<std::string, std::string, std::less<>>;
class ContentMismatch : public Error {
public:
    using Error::Error;
};

formats::LayerDigests write_upper_layer(const std::string& upper_dir, int out_fd,
                                        const formats::TarWriter::Options& opts,
                                        DiffStats* stats = nullptr, ChunkedPack* chunked = nullptr,
                                        const ContentChecks* checks = nullptr);

// One entry of an upper directory as write_upper_layer sees it, for those
// who list a container's changes (docker diff) with the same walk.
struct UpperEntry {
    std::string path; // "etc/passwd"
    struct stat st {};
    bool whiteout = false; // an overlay whiteout: path was deleted
    bool opaque = false;   // a directory hiding what the layers below have there
};
// Visits the entries of an upper directory in write_upper_layer's order
// (sorted bytes per directory, a directory before its contents).
void walk_upper_dir(const std::string& upper_dir,
                    const std::function<void(const UpperEntry&)>& visit);

// parent_dir empty: the whole of dir.
formats::LayerDigests write_diff_layer(const std::string& dir, const std::string& parent_dir,
                                       int out_fd, const formats::TarWriter::Options& opts,
                                       DiffStats* stats = nullptr, ChunkedPack* chunked = nullptr);

} // namespace strata::snapshot
