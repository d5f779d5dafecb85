// What `strata mount` holds in the store (cmd_mount.cpp), for the commands
// that must not pull an image from under a mount (rmi) and for gc.
#pragma once

#include "formats/digest.hpp"
#include "snapshot/store.hpp"

#include <string>
#include <vector>

namespace strata::cli {

// The mount points of strata mounts of the image with this manifest digest
// (mounted, or recorded with their writable layer still there).
std::vector<std::string> mounts_of_image(const snapshot::Store& store,
                                         const formats::Digest& manifest);

// Writable-mount work directories (mounts/rw-*) that no mount record uses
// any more: left by a failed `umount --commit` or a crash. Under the mount
// lock, so a mount being set up is never taken for one.
std::vector<std::string> orphaned_uppers(const snapshot::Store& store);
// Removes them; returns the directories removed.
std::vector<std::string> remove_orphaned_uppers(const snapshot::Store& store);

} // namespace strata::cli
