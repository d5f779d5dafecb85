// The mount stubs of a RUN step, as BuildKit's mount stub cleaner handles
// them: the mount points the runner had to create in the root (an image
// without /proc or /etc/hosts, a --mount target) are no change the step
// made. The runner removes the empty ones itself (runner::run reports what
// it created); this puts back the times of the directories they were made
// in, and, after the overlay is unmounted, drops the parents that overlayfs
// copied up into the upper directory only for them, so that none of it ends
// up in the layer.
#pragma once

#include "runner/runner.hpp"

#include <map>
#include <string>
#include <sys/stat.h>

namespace strata::builder {

class MountStubs {
public:
    // created: what runner::run reported for a root that is still mounted
    // at rootfd.
    MountStubs(int rootfd, const runner::CreatedMountPoints& created);

    // While the overlay is still mounted: the directories above the mount
    // points get back the times they had before the run. Failures are
    // ignored (the layer then shows the directory as changed).
    void restore_times() const;

    // After unmounting: an empty, non-opaque copied-up parent whose metadata
    // is what the lower layers have is no change at all, and is removed from
    // the upper directory.
    void prune_upper(const std::string& upper) const;

private:
    int m_rootfd;
    std::map<std::string, struct stat> m_parents; // sorted: parents before children
};

} // namespace strata::builder
