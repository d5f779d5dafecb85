// Mounting a stack of layers, the API behind `strata mount/umount/mounts`.
//
// mount() stacks directories in overlayfs form (top-most first) on a target,
// with the kernel overlay driver or strata's FUSE union filesystem (run as
// the strata-overlay program, which daemonizes once the mount is live and
// exits when it is unmounted). Each mount can leave a record in a state
// directory so that list_mounts() can show strata's mounts and unmount() can
// tear them down later, from another process. A FUSE mount may instead keep
// strata-overlay in the foreground, as a child owned by the mount handle.
#pragma once

#include "util/child.hpp"

#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace strata::layerfs {

enum class Driver { overlay, fuse };

// "overlay" / "fuse"; parse_driver throws UsageError for anything else.
const char* driver_name(Driver d) noexcept;
Driver parse_driver(const std::string& name);

// A lazy image (layerfs/lazy_fs.hpp), served by the strata-lazy program.
struct LazyImage {
    std::string store;     // the store's root
    std::string manifest;  // "sha256:..."
    bool suid_dev = false; // a container's lower: setuid binaries and devices work
};

struct MountSpec {
    std::vector<std::string> lowers; // top-most first; at least one (unless lazy)
    // The FUSE driver only, read-only: the image served by strata-lazy from
    // its compressed layers instead of lowers.
    std::optional<LazyImage> lazy;
    std::string upper; // empty: read-only
    std::string work;  // required with upper
    Driver driver = Driver::overlay;
    // Where to record the mount (one file per mount); empty: no record.
    std::string state_dir;
    std::string label; // free text kept in the record (e.g. the image reference)
    // The FUSE program; default: strata-overlay beside /proc/self/exe, then $PATH.
    std::string fuse_program;
    // nosuid,nodev with the kernel overlay driver (the FUSE driver always
    // mounts so): for mounts other users may browse, as `strata mount` makes.
    bool nosuid_nodev = false;
    // The kernel overlay driver: its "volatile" option (OverlaySpec), for an
    // upper directory its owner syncs itself when it keeps it (a build step).
    bool volatile_upper = false;
    // The FUSE driver only: strata-overlay runs in the foreground as a child
    // of this process, which dies with it (PR_SET_PDEATHSIG), instead of as
    // a daemon, and the handle owns it (Teardown::detach, then reaps it).
    // For mounts inside namespaces of the caller's own (a rootless `strata
    // run`), which no daemon may outlive. Not recorded: state_dir stays empty.
    bool foreground = false;
    // The FUSE driver: the source column of mountinfo (strata-overlay's
    // fsname=); empty: the program's default.
    std::string fsname;
};

struct MountRecord {
    std::string target;
    Driver driver = Driver::overlay;
    std::vector<std::string> lowers;
    std::string upper;
    std::string work;
    std::string label;
    bool mounted = false; // target is a mount point right now
};

// How a MountHandle unmounts. normal: as layerfs::unmount() below (a busy
// target is detached with a warning, a user's FUSE mount goes through
// fusermount3). detach: at once with MNT_DETACH, and a destructor that says
// nothing when that fails: for throwaway mounts in a mount namespace of the
// caller's own, which nothing else uses.
enum class Teardown { normal, detach };

// An active mount. Destroying it unmounts (logging failures, or silently
// with Teardown::detach) unless release() was called; move-only.
class MountHandle {
public:
    MountHandle() = default;
    // Takes over a mount made elsewhere (e.g. by mount_overlay).
    MountHandle(std::string target, Driver driver, std::string state_dir,
                Teardown teardown = Teardown::normal)
        : m_target(std::move(target)), m_driver(driver), m_state_dir(std::move(state_dir)),
          m_teardown(teardown) {}
    MountHandle(MountHandle&& o) noexcept;
    MountHandle& operator=(MountHandle&& o) noexcept;
    MountHandle(const MountHandle&) = delete;
    MountHandle& operator=(const MountHandle&) = delete;
    ~MountHandle();

    const std::string& target() const noexcept { return m_target; }
    Driver driver() const noexcept { return m_driver; }
    // Unmounts now (and reaps a foreground FUSE program); throws SysError if
    // the target stays mounted.
    void unmount();
    // Keeps the mount and returns its target (a foreground FUSE program
    // serves on until this process ends).
    std::string release() noexcept;

private:
    friend MountHandle mount(const MountSpec& spec, const std::string& target);
    // Unmounts, logging (normal) or ignoring (detach) a failure.
    void unmount_noexcept() noexcept;
    // Waits up to 2 s for the foreground FUSE program to see its mount go,
    // then terminates it.
    void reap_fuse(const std::string& target) noexcept;

    std::string m_target;
    Driver m_driver = Driver::overlay;
    std::string m_state_dir;
    Teardown m_teardown = Teardown::normal;
    Child m_fuse; // the foreground FUSE program (MountSpec::foreground)
};

// The FUSE program for spec.fuse_program (empty: strata-overlay beside
// /proc/self/exe, in the build tree's layerfs/, then in PATH). Throws Error
// when there is none.
std::string find_fuse_program(const std::string& configured = {},
                              const std::string& name = "strata-overlay");

// Mounts spec on target (an existing directory). Throws UsageError for a bad
// spec, SysError/Error when the mount fails (nothing stays mounted then). A
// foreground FUSE mount throws SysError("open", "/dev/fuse") when the device
// cannot be read and written, Error when the program ends before mounting
// or has not mounted within 10 s.
MountHandle mount(const MountSpec& spec, const std::string& target);

// Unmounts target and removes its record from state_dir (if given). Works for
// a FUSE mount whose process died ("Transport endpoint is not connected"):
// the mount is detached. A target that is not mounted is fine when a record
// for it exists (the record is removed); otherwise throws SysError(EINVAL).
void unmount(const std::string& target, const std::string& state_dir = {});

// strata's recorded mounts, sorted by target; records whose mount vanished
// are reported with mounted == false (not removed). Missing state_dir: empty.
std::vector<MountRecord> list_mounts(const std::string& state_dir);

// The record for target, if there is one.
std::optional<MountRecord> maybe_mount_record(const std::string& state_dir,
                                              const std::string& target);

} // namespace strata::layerfs
