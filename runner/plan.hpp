// Internal to the runner: the plan the parent prepares before clone, and the
// child that carries it out. Everything the child needs is computed here, in
// the parent, so the child (a copy of a possibly multi-threaded process)
// only reads prepared memory and makes system calls: no allocation, no
// locks, no exceptions, and failures go back as (step, errno, index).
#pragma once

#include "runner/runner.hpp"
#include "runner/seccomp.hpp"
#include "runner/user.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <sys/resource.h>
#include <vector>

namespace strata::runner::detail {

// The steps of the child, in the order they run. The parent turns a
// reported step into a message (step_text).
enum class Step : int {
    wait_parent = 1,
    signals,
    make_private,
    bind_root,
    open_root,
    mount_target, // creating or opening a mount point (index: op)
    mount,        // the mount itself (index: op)
    remount_ro,   // making a mount read-only (index: op, or -1 for the root)
    workdir,
    pivot_root,
    detach_old_root,
    hostname,
    loopback,
    rlimit, // index: rlimit
    groups,
    gid,
    uid,
    cap_bounding,
    cap_ambient,
    capset,
    no_new_privs,
    stdio,
    setsid,
    controlling_tty,
    close_fds,
    console, // allocating the pty in the container's /dev/pts
    chdir,
    exec, // index: candidate
    fork_init,
    session_keyring,
    seccomp,
    // Isolation (mount targets, masks, the device cgroup).
    target_symlink, // a mount point in the image is a symlink (detail: "path\tlink"; index: op)
    target_type,    // a mount point in the image is of the wrong type (detail: path; index: op)
    mask_verify,    // a masked/read-only path is not on the procfs/sysfs just mounted (index: op)
    cgroup,         // joining the container's cgroup (index: hierarchy)
    cgroupns,       // unsharing the cgroup namespace
    device,         // creating a device node (index: op)
    // runner::exec (runner/exec.cpp).
    join_namespace, // setns into the container's namespace (index: ExecNs)
    fork_exec,      // forking the exec'd process inside the container's PID namespace
};

struct Report {
    int step;
    int err;
    int index;
    char detail[200]; // the kernel's own words when it gave some (fs context log)
};

enum class OpKind : int {
    fs,       // mount(source, target, fstype, flags, data)
    bind,     // bind source (a host path) recursively
    gen_file, // write content to a staging file in the container's /dev and bind it
    symlink,  // create target as a symlink to content
    mask,     // hide: /dev/null over a file, a read-only tmpfs over a directory
    readonly, // bind target onto itself, read-only
    device,   // a device node: mknod (as root, no user namespace) or a bind of the host's
};

// The procfs and sysfs instances the masks are applied below (Op::keep_mount, Op::base).
enum : int { k_mount_proc = 0, k_mount_sys = 1, k_kept_mounts = 2 };

struct Op {
    OpKind kind = OpKind::fs;
    const char* target = nullptr; // absolute, inside the root
    bool target_dir = true;       // create the target as a directory (else a file)
    const char* fstype = nullptr;
    const char* source = nullptr;
    unsigned long flags = 0;
    const char* data = nullptr;
    bool read_only = false;    // make read-only (recursively) after mounting
    bool sys_fallback = false; // sysfs: bind the host's /sys when mounting fails
    const char* content = nullptr;
    std::size_t content_len = 0;
    // No symlink anywhere on the way to target (/proc, /sys, /dev and below):
    // refused with Step::target_symlink, as runc does since CVE-2019-19921.
    bool no_symlinks = false;
    int keep_mount = -1; // fs: remember the new mount as k_mount_proc/k_mount_sys
    int base = -1;       // mask/readonly: target is relative to that kept mount
    // device: the node's type and permissions (st_mode), number and owner.
    unsigned dev_mode = 0;
    unsigned long long rdev = 0;
    uid_t dev_uid = 0;
    gid_t dev_gid = 0;
};

// One cgroup.procs per v1 hierarchy the container joins (devices, memory,
// cpu, cpuacct, cpuset, pids, blkio, freezer), with room to spare.
inline constexpr int k_max_cgroup_fds = 12;

struct Plan {
    // Parent-owned storage behind every pointer below.
    std::deque<std::string> strings;
    const char* keep(std::string s) { return strings.emplace_back(std::move(s)).c_str(); }

    const char* rootfs = nullptr;
    const char* hostname = nullptr;
    const char* workdir = nullptr;
    std::vector<Op> ops;
    std::vector<Rlimit> rlimits;
    bool network_none = true;
    bool read_only = false;
    bool init = false;
    bool tty = false;
    bool rootless = false;         // user namespace made without root
    bool setgroups_denied = false; // rootless with only our own ids mapped: no setgroups
    bool new_mount_api = false;    // fsopen/fsmount/open_tree/move_mount (else mount(2))
    bool device_bind = false;      // device ops bind the host's node (user namespace: no mknod)
    // cgroup.procs of the container's cgroup, one per hierarchy: write "0".
    int cgroup_fds[k_max_cgroup_fds] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    bool unshare_cgroupns = false; // a cgroup namespace after joining (not at clone)

    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
    std::uint64_t caps = 0;
    int cap_last = 0; // the kernel's highest capability number
    // The seccomp filter, compiled by the parent (empty code: unconfined).
    SeccompProgram seccomp;
    struct sock_fprog seccomp_fprog {};

    int stdio[3] = {-1, -1, -1}; // sources for 0, 1, 2 (-1: keep)
    int sync_fd = -1;            // read: the parent's go-ahead
    bool wait_parent = true;     // block for the go-ahead (id maps); else only check strata lives
    int report_fd = -1;          // write: Report on failure; EOF on exec
    int init_fd = -1;            // init: the sealed memfd holding docker-init
    int console_fd = -1;         // tty: socket that takes the pty master to the parent
    int close_in_child[4] = {-1, -1, -1, -1}; // the parent's ends
    int join_netns_fd = -1; // a network namespace the child enters first (rootless join)

    std::vector<const char*> argv;       // null-terminated
    std::vector<const char*> envp;       // null-terminated
    std::vector<const char*> candidates; // exec paths to try, in order
    std::vector<const char*> init_argv;  // init: docker-init -- argv..., null-terminated
};

// The bytes Control writes on its pipe: cancel, window change, signal N
// (k_event_signal_base + N).
enum : unsigned char { k_event_cancel = 0, k_event_winch = 1, k_event_signal_base = 2 };

// Runs in the cloned child; never returns.
[[noreturn]] void child_main(const Plan& plan) noexcept;
// The end of child_main, shared with runner::exec's child (runner/exec.cpp):
// standard streams (plan.stdio, or console_slave with plan.tty), fds closed at
// exec, a new session keyring, groups, ids, capabilities, no_new_privs,
// seccomp, session and controlling tty, chdir(plan.workdir), exec.
[[noreturn]] void become_command(const Plan& plan, int console_slave) noexcept;
// Resets the child's per-thread state (first thing in a child).
void child_begin() noexcept;
// Reports (step, err, index) on plan.report_fd and exits.
[[noreturn]] void child_fail(const Plan& plan, Step step, int err, int index = -1) noexcept;

// Helpers shared with the tests.
std::string hosts_file(const std::string& hostname,
                       const std::vector<std::pair<std::string, std::string>>& extra,
                       Network network, const std::string& hosts_address = {});
std::string resolv_conf(Network network);
std::vector<std::string> container_env(const RunSpec& spec, const ExecUser& user,
                                       const std::string& hostname);
std::vector<std::string> exec_candidates(const std::string& argv0,
                                         const std::vector<std::string>& env);
std::string step_text(Step step);
// The container's seccomp filter for plan.caps into plan (as Container::start
// compiles it); returns its name for messages. Throws StartError (125).
std::string plan_security_seccomp(Plan& plan, const Security& security);
// Copies what is readable from `from` to `to`; false at EOF or error.
bool pump_stream(int from, int to);
// The terminal size of `from` (when it is a terminal) onto the pty master.
void copy_winsize(int from, int master);

} // namespace strata::runner::detail
