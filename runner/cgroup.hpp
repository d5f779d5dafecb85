// The container's cgroup: one directory per container, created before the
// container starts and removed after it has ended. Today it carries Docker's
// device policy (which device nodes the container may open or create); it is
// where memory, cpu and pids limits go too.
//
//   runner::Cgroup cg = runner::Cgroup::create("strata", id);  // throws
//   cg.set_devices(runner::default_device_rules());
//   // the child writes "0" to each of cg.procs_fds() before it execs
//   ...                                                        // ~Cgroup: rmdir
//
// cgroup v1 (and hybrid hosts, whose v1 hierarchies hold the controllers):
// one directory per controller, /sys/fs/cgroup/<controller>/<parent>/<id>;
// device rules go to devices.deny / devices.allow. cgroup v2 (unified): one
// directory /sys/fs/cgroup/<parent>/<id>; the device rules become a
// BPF_PROG_TYPE_CGROUP_DEVICE program attached to it, as runc and crun do
// (v2 has no devices controller).
//
// Only real root (in the initial user namespace) gets one. A container in a
// user namespace of a non-root user needs none for devices: the kernel
// refuses mknod of devices there, and every filesystem mounted from there
// (its root overlay, its /dev tmpfs) is nodev.
#pragma once

#include "util/fd.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace strata::runner {

enum class CgroupVersion {
    v1,     // only v1 hierarchies
    hybrid, // v1 hierarchies with the controllers, plus a v2 tree (/sys/fs/cgroup/unified)
    v2,     // the unified hierarchy only, mounted at /sys/fs/cgroup
};

// From statfs(2) of /sys/fs/cgroup (cgroup2 magic: v2; tmpfs: v1, or hybrid
// when /sys/fs/cgroup/unified is a cgroup2 mount).
CgroupVersion cgroup_version();
const char* cgroup_version_name(CgroupVersion v);

// One rule of a device cgroup, in the v1 file syntax: "c 1:3 rwm", "a *:* rwm".
struct DeviceRule {
    char type = 'a';         // 'a' (every device), 'c' (character), 'b' (block)
    std::int64_t major = -1; // -1: any
    std::int64_t minor = -1; // -1: any
    std::string access = "rwm";
    bool allow = true;

    std::string text() const; // "c 1:3 rwm"
    bool operator==(const DeviceRule&) const = default;
};

// Parses "rwm" and its subsets (--device's PERMS); throws UsageError.
std::string device_access(const std::string& perms);

// Docker's default device rules (moby's defaults, then runc's AllowedDevices):
// deny everything, allow mknod of any node ("c *:* m", "b *:* m") and
// read/write/mknod of null (1:3), zero (1:5), full (1:7), random (1:8),
// urandom (1:9), tty (5:0), console (5:1), ptmx (5:2), the pts (136:*) and
// tun (10:200, which needs CAP_NET_ADMIN to be of use).
std::vector<DeviceRule> default_device_rules();

// The BPF program that enforces rules on cgroup v2, as raw bpf_insn words
// (8 bytes each). The last matching rule decides; no match denies. Rules
// before the last one that matches everything ("a *:* rwm") are left out.
std::vector<std::uint64_t> device_filter_program(const std::vector<DeviceRule>& rules);
// Loads it into the kernel (BPF_PROG_LOAD); returns the program's fd.
UniqueFd load_device_filter(const std::vector<DeviceRule>& rules);

class Cgroup {
public:
    // Creates <parent>/<id> in every hierarchy that has one of controllers
    // (v1/hybrid: /sys/fs/cgroup/<controller>/<parent>/<id>; v2: one
    // directory). Throws Error naming the path when a controller is missing
    // or a directory cannot be made: the caller must not start the container.
    static Cgroup create(const std::string& parent, const std::string& id,
                         const std::vector<std::string>& controllers = {"devices"});
    // Same, below an explicit mount point of the hierarchy (tests).
    static Cgroup create_at(CgroupVersion version, const std::string& mount_root,
                            const std::string& parent, const std::string& id,
                            const std::vector<std::string>& controllers);

    Cgroup() = default;
    Cgroup(Cgroup&&) noexcept = default;
    Cgroup& operator=(Cgroup&& o) noexcept;
    Cgroup(const Cgroup&) = delete;
    Cgroup& operator=(const Cgroup&) = delete;
    ~Cgroup();

    // Replaces the device rules: v1 writes "a" to devices.deny then each
    // rule to devices.allow or devices.deny; v2 attaches a device program.
    void set_devices(const std::vector<DeviceRule>& rules);

    // Open fds of each directory's cgroup.procs: writing "0" to one moves
    // the writer there (the child does, before it execs).
    std::vector<int> procs_fds() const;
    // The directories, one per hierarchy.
    const std::vector<std::string>& paths() const noexcept { return dirs_; }
    CgroupVersion version() const noexcept { return version_; }

    // Removes the directories (every process must have ended; an exited
    // container's last processes can take a moment to leave, so EBUSY is
    // retried briefly). Throws on failure; the destructor only logs.
    void remove();

private:
    CgroupVersion version_ = CgroupVersion::v1;
    std::vector<std::string> dirs_;        // created, outermost hierarchy first
    std::vector<std::string> controllers_; // parallel to dirs_ (v2: "")
    std::vector<UniqueFd> procs_;          // cgroup.procs of each dir, O_WRONLY
    UniqueFd device_prog_;                 // v2: the attached program
};

} // namespace strata::runner
