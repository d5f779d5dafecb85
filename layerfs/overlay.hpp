// Kernel overlayfs mounts of a layer stack.
//
// The new mount API is tried first: fsopen("overlay"), one fsconfig
// "lowerdir+" per layer (so stacks of hundreds of layers mount: the classic
// option string is limited to one page), fsmount, move_mount. When the kernel
// lacks it (ENOSYS, or EINVAL for "lowerdir+" before Linux 6.8) or
// STRATA_FORCE_FALLBACK=1, mount(2) is used with a "lowerdir=a:b:c" string;
// when that string does not fit in a page, a forked child chdirs into the
// layers' common parent and mounts with short relative paths, as
// containers/storage does. Build overlays use index=off, redirect_dir=off and
// metacopy=off so the upper directory is a self-contained diff (so a merged
// directory cannot be renamed: rename(2) gives EXDEV, which mv handles by
// copying). A single read-only layer is bind mounted read-only, since
// overlayfs needs two lower layers when it has no upper one.
#pragma once

#include <string>
#include <vector>

namespace strata::layerfs {

struct OverlaySpec {
    std::vector<std::string> lowers; // top-most first; at least one
    std::string upper;               // empty: read-only mount
    std::string work;                // required with upper, same filesystem as upper
    // The upper directory is thrown away after use (`strata run`): overlay's
    // "volatile" option (Linux 5.10) skips every sync of the upper
    // filesystem, which otherwise makes each unmount sync the whole disk.
    bool volatile_upper = false;
    // Overlay's own xattrs (opaque directories, in the layers and in the
    // upper) are user.overlay.* instead of trusted.overlay.*: for a mount
    // inside a user namespace (Linux 5.11), where trusted.* is out of reach.
    bool userxattr = false;
    // nosuid,nodev: for a mount host users can browse (`strata mount`), where
    // an image's setuid-root binary or device node must not work.
    bool nosuid_nodev = false;
};

// Mounts the stack on target (an existing directory). Throws SysError (with
// the op that failed and the target) or UsageError for an invalid spec.
void mount_overlay(const OverlaySpec& spec, const std::string& target);

// Which path the last mount_overlay in this process took: "fsconfig lowerdir+",
// "mount(2)", "mount(2) relative" or "bind"; for tests and debug logs.
std::string last_overlay_method();

// "lowerdir=L1:L2[,upperdir=U,workdir=W]" (upper and work when upper is not
// empty), as overlayfs and strata-overlay read it: each path escaped, since
// the option parser splits on ',' and lowerdir on ':' (a backslash escapes
// either).
std::string layer_dirs_option(const std::vector<std::string>& lowers, const std::string& upper,
                              const std::string& work);

} // namespace strata::layerfs
