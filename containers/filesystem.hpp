// A container's filesystem as Docker's `diff`, `commit` and `export` see it:
// the image's snapshots (lowers, topmost first, as overlayfs takes them)
// under the container's writable layer (an overlayfs upper directory:
// whiteouts are 0:0 character devices, opaque directories carry
// trusted.overlay.opaque=y). Each walks only the upper directory, with the
// walk of the layer writer (snapshot::walk_upper_dir / write_upper_layer).
#pragma once

#include "formats/compression.hpp"
#include "formats/oci.hpp"
#include "snapshot/layer_diff.hpp"
#include "snapshot/store.hpp"

#include <string>
#include <vector>

namespace strata::containers {

// Docker's archive.ChangeType: "C", "A", "D".
enum class ChangeKind { modify, add, remove };
char change_letter(ChangeKind k);

struct Change {
    std::string path; // "/etc/passwd"
    ChangeKind kind = ChangeKind::modify;
    bool operator==(const Change&) const = default;
};

// The changes of an upper directory over its lowers (topmost first), as
// Docker's overlay driver lists them (archive.OverlayChanges): in walk order
// (names sorted per directory, a directory before its contents); a whiteout
// is D, as is an opaque directory (its contents then follow as A); an entry
// that the lowers show (through their own whiteouts and opaque directories)
// is C, otherwise A; a directory the lowers have with the same mode, size
// and mtime is left out (copied up only for what is below it); the parent of
// an A or D not listed yet is listed as C just before it.
std::vector<Change> list_changes(const std::vector<std::string>& lowers, const std::string& upper);

// docker commit's layer and image: the upper becomes a layer (the build's
// layer writer, snapshot::put_upper_layer) on top of base's layers; config is
// the new image's config as the caller made it (base's rootfs and history
// are taken from base); history is appended (empty_layer set when the upper
// holds nothing, which then adds no layer), created is history's. Returns
// the manifest descriptor (the image is in the store, not named yet).
struct CommitResult {
    formats::Descriptor manifest;
    formats::Digest id; // the config digest (Docker's image ID)
    bool empty_layer = false;
    snapshot::DiffStats stats;
};
CommitResult commit_image(snapshot::Store& store, const snapshot::Image& base,
                          const std::string& upper, formats::ImageConfig config,
                          formats::History history, formats::Compression compression);

// docker export: the container's whole filesystem (the image flattened, the
// upper applied over it with its whiteouts) as an uncompressed tar on fd.
void write_container_tar(snapshot::Store& store, const snapshot::Image& image,
                         const std::string& upper, int fd);

} // namespace strata::containers
