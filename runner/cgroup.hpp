// The container's cgroup: one directory per container, created before the
// container starts and removed after it has ended. Today it carries Docker's
// device policy (which device nodes the container may open or create) and
// its resource limits (runner/resources.hpp), and is where the freezer
// (pause/unpause) and the stats of a running container are read from.
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

#include "runner/resources.hpp"
#include "util/fd.hpp"

#include <cstdint>
#include <string>
#include <sys/types.h>
#include <utility>
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

// The mount point of the v1 hierarchy that holds controller (from
// /proc/self/mountinfo); "" when none is mounted.
std::string cgroup_v1_mount(const std::string& controller);

// The v1 controllers a container's cgroup joins when they are mounted
// (devices is required, the others optional): its limits, its stats, its freezer.
const std::vector<std::string>& container_controllers();

// Where a container's cgroup is, for another process that has only its
// name or its pid: (controller, directory) pairs; v2: one ("", directory).
struct CgroupPaths {
    CgroupVersion version = CgroupVersion::v1;
    std::vector<std::pair<std::string, std::string>> dirs;

    // The directory of a controller (v2: the one directory); "" when none.
    std::string dir_of(const std::string& controller) const;
    bool empty() const noexcept { return dirs.empty(); }
};
// The cgroup a container started with RunSpec::cgroup_name == name has:
// /sys/fs/cgroup/<controller>/strata/<name> (v1), /sys/fs/cgroup/strata/<name>
// (v2); only the directories that exist (none once the container has ended).
CgroupPaths cgroup_paths(const std::string& name);
// The cgroup of a process, from /proc/<pid>/cgroup (e.g. a running
// container's PID 1, for exec to join). Throws naming the file.
CgroupPaths cgroup_paths_of(pid_t pid);

// The freezer (docker pause/unpause): v1 freezer.state FROZEN/THAWED, v2
// cgroup.freeze + cgroup.events; each waits until the state has settled
// (every process stopped, or running again). Throws naming the file.
void freeze(const CgroupPaths& cg);
void thaw(const CgroupPaths& cg);
bool frozen(const CgroupPaths& cg);

// What `docker stats` shows of a container, read from its cgroup.
struct CgroupStats {
    std::uint64_t cpu_usage_ns = 0; // cpuacct.usage / cpu.stat usage_usec
    std::uint64_t memory_usage = 0; // memory.usage_in_bytes / memory.current
    std::uint64_t memory_cache = 0; // (m_total)inactive_file, which docker subtracts
    std::uint64_t memory_limit = 0; // the limit; unlimited: the host's memory, as docker
    std::uint64_t pids_current = 0; // pids.current
    std::uint64_t blkio_read = 0;   // bytes read and written (blkio / io.stat)
    std::uint64_t blkio_write = 0;
    // What docker's CLI shows as MEM USAGE: usage minus the inactive file cache.
    std::uint64_t memory_shown() const noexcept {
        return memory_cache < memory_usage ? memory_usage - memory_cache : memory_usage;
    }
};
CgroupStats read_cgroup_stats(const CgroupPaths& cg);
// The host's cpu time in ns (/proc/stat's cpu line, as moby's
// getSystemCPUUsage): the denominator of docker's CPU %.
std::uint64_t system_cpu_usage_ns();
// The host's memory (/proc/meminfo MemTotal), in bytes.
std::uint64_t host_memory_bytes();
// Bytes received and sent on the network interfaces (but lo) of the
// network namespace of pid (/proc/<pid>/net/dev).
struct NetIO {
    std::uint64_t rx = 0;
    std::uint64_t tx = 0;
};
NetIO read_net_io(pid_t pid);

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
    // optional: v1 controllers joined when mounted, skipped otherwise.
    // A stale empty <parent>/<id> (a container of that name whose strata
    // was killed) is removed first; one with processes in it is an error.
    static Cgroup create(const std::string& parent, const std::string& id,
                         const std::vector<std::string>& controllers = {"devices"},
                         const std::vector<std::string>& optional = {});
    // Same, below an explicit mount point of the hierarchy (tests).
    static Cgroup create_at(CgroupVersion version, const std::string& mount_root,
                            const std::string& parent, const std::string& id,
                            const std::vector<std::string>& controllers,
                            const std::vector<std::string>& optional = {});

    Cgroup() = default;
    Cgroup(Cgroup&&) noexcept = default;
    Cgroup& operator=(Cgroup&& o) noexcept;
    Cgroup(const Cgroup&) = delete;
    Cgroup& operator=(const Cgroup&) = delete;
    ~Cgroup();

    // Replaces the device rules: v1 writes "a" to devices.deny then each
    // rule to devices.allow or devices.deny; v2 attaches a device program.
    void set_devices(const std::vector<DeviceRule>& rules);

    // Writes the limits (verified by verify_resources). Throws Error naming
    // the file that could not be written, or the controller that is missing.
    void apply(const Resources& r);
    // Whether the OOM killer killed a process of this cgroup (v1
    // memory.oom_control's oom_kill counter, v2 memory.events oom_kill).
    bool oom_killed() const;
    CgroupPaths where() const;

    // Open fds of each directory's cgroup.procs: writing "0" to one moves
    // the writer there (the child does, before it execs).
    std::vector<int> procs_fds() const;
    // The directories, one per hierarchy.
    const std::vector<std::string>& paths() const noexcept { return m_dirs; }
    CgroupVersion version() const noexcept { return m_version; }

    // Removes the directories (every process must have ended; an exited
    // container's last processes can take a moment to leave, so EBUSY is
    // retried briefly). Throws on failure; the destructor only logs.
    void remove();

private:
    CgroupVersion m_version = CgroupVersion::v1;
    std::vector<std::string> m_dirs;        // created, outermost hierarchy first
    std::vector<std::string> m_controllers; // parallel to m_dirs (v2: "")
    std::vector<UniqueFd> m_procs;          // cgroup.procs of each dir, O_WRONLY
    UniqueFd m_device_prog;                 // v2: the attached program
};

} // namespace strata::runner
