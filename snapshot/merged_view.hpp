// Paths resolved in the merged view of a layer being applied over the layers
// below it, as a layer is applied onto its image's root filesystem (containerd
// and BuildKit mount the lowers and the new upper and untar into the mount):
// a symlink anywhere in an entry's parent path is followed inside the root,
// whichever layer brought it. With `var/run -> /run` in layer 1, layer 2's
// `var/run/x` is `run/x` of the image.
//
// The view is the target directory (the snapshot being written, or a
// flattened root that already holds every lower layer) over lower snapshot
// directories in overlayfs form (topmost first): a 0:0 character device is a
// whiteout, a directory with the opaque xattr hides the directories below it
// of the same path, a non-directory hides everything below it at that path.
//
// Resolution is the kernel's RESOLVE_IN_ROOT: an absolute link target starts
// at the root, ".." stops at the root. Nothing here ever leaves the target or
// the lowers.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace strata::snapshot {

class MergedView {
public:
    // target: an fd of the target directory (not owned). lowers: snapshot
    // directories, topmost first. The opaque marker is trusted.overlay.opaque
    // or user.overlay.opaque (a snapshot for a user namespace's overlay).
    MergedView(int target, std::vector<std::string> lowers);

    // Lower layers stop being consulted at or below a path for which
    // hidden(path) is true (e.g. a directory the layer being applied makes
    // opaque or whites out).
    void set_hidden(std::function<bool(const std::string&)> hidden) {
        m_hidden = std::move(hidden);
    }

    struct Node {
        enum class Kind { missing, dir, symlink, other };
        Kind kind = Kind::missing;
        int layer = -1;     // -1: the target; otherwise the index into lowers
        struct stat st {};  // lstat of the entry where it was found
        std::string target; // the link's target (symlink)
    };

    // The topmost entry at a resolved path (no symlinks in its parents, ""
    // is the root).
    Node lookup(const std::string& real) const;

    // Resolves path (relative to the root, checked: no ".." components)
    // following every symlink on the way, the last one too. Returns the real
    // path, or nullopt when a component is missing: with create, a missing
    // component ends the walk and the rest is appended (the caller makes it);
    // a symlink whose target is missing is an error naming the link, as
    // Docker's MkdirAll fails there. Throws SysError ENOTDIR for a
    // non-directory on the way, ELOOP for more than 40 links.
    std::optional<std::string> resolve(const std::string& path, bool create) const;

    // The host path of a lower layer's entry (for copying its metadata).
    std::string lower_path(int layer, const std::string& real) const;

private:
    std::optional<std::string> resolve_at(const std::string& path, bool create, int depth,
                                          bool follow_last) const;
    std::vector<int> lower_stack(const std::string& dir) const;

    int m_target;
    std::vector<std::string> m_lowers;
    std::function<bool(const std::string&)> m_hidden;
};

} // namespace strata::snapshot
