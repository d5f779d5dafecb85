// Checking an unpacked snapshot (overlay form, see layer_apply.hpp) against
// the layer it was unpacked from.
//
// The layer is streamed once; every entry's expected state is recorded (the
// last entry for a path wins, a non-directory replacing a directory drops
// what was below it, as the applier does), regular-file content is hashed on
// the way. Then each expected path is looked up in the snapshot and compared:
// type, permission bits, owner (when running as root, since only then does
// the applier set owners), size and SHA-256 of the content, symlink target,
// device numbers, xattrs (those overlayfs keeps for itself aside), overlay
// whiteouts (0:0 character devices or xattr whiteouts) and opaque
// directories, hard links (the same inode as their target). Finally the
// snapshot tree is walked and whatever the layer did not bring is reported.
// Modification times are not compared (a build's upper directory and an
// unpacked layer differ there for directories).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace strata::snapshot {

struct SnapshotMismatch {
    std::string path; // "/etc/passwd" ("/" for the root)
    std::string what; // "content hashes to sha256:..., the layer has sha256:..."
};

struct SnapshotCheck {
    std::vector<SnapshotMismatch> mismatches;
    std::uint64_t entries = 0; // layer entries read
};

// layer_fd: the layer blob (possibly compressed); layer_name for messages.
// lower_dirs: the snapshots below (topmost first), where a hard link of this
// layer may have found its target (copied up into the snapshot). Throws when
// the layer cannot be read or the snapshot directory cannot be opened.
SnapshotCheck verify_snapshot(int layer_fd, const std::string& layer_name,
                              const std::string& snapshot_dir,
                              const std::vector<std::string>& lower_dirs);

} // namespace strata::snapshot
