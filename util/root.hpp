// Resolving paths *inside* a root directory (a rootfs, a build context, an
// unpack target) without ever leaving it: ".." stops at the root and
// absolute symlinks are taken relative to the root, as the kernel's
// RESOLVE_IN_ROOT does. openat2 is used where the kernel has it; the
// fallback walks component by component with O_NOFOLLOW and resolves
// symlinks itself, with the same semantics.
#pragma once

#include "util/fd.hpp"

#include <string>
#include <string_view>
#include <sys/types.h>

namespace strata {

// Opens path (absolute or relative, interpreted inside root) with flags.
// Symlinks in intermediate components are followed inside the root; the last
// component is followed unless flags has O_NOFOLLOW (O_PATH|O_NOFOLLOW opens
// the link itself).
UniqueFd open_in_root(int rootfd, std::string_view path, int flags, mode_t mode = 0);

// Opens the parent directory of path (resolved inside root) and returns it
// together with the final component. Throws on an empty last component
// ("/", "." or "..").
struct ParentRef {
    UniqueFd dir;
    std::string name;
};
ParentRef open_parent_in_root(int rootfd, std::string_view path);

// mkdir -p inside root; returns an fd of the final directory. Components that
// exist must be directories (or symlinks to directories inside the root).
UniqueFd mkdirs_in_root(int rootfd, std::string_view path, mode_t mode = 0755);

// Lexically cleans a path the way Go's filepath.Clean does: collapses "//",
// removes ".", resolves ".." against earlier components; an absolute path
// never goes above "/". Returns "." for an empty relative result.
std::string clean_path(std::string_view path);

} // namespace strata
