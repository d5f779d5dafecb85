// The caller's side of the runner: turns a RunSpec into a Plan, clones the
// child into new namespaces, writes its id maps, lets it go, and waits.
#include "runner/runner.hpp"

#include "runner/cgroup.hpp"
#include "runner/docker_init.hpp"
#include "runner/idmap.hpp"
#include "runner/plan.hpp"
#include "runner/seccomp.hpp"
#include "runner/user.hpp"
#include "util/log.hpp"
#include "util/root.hpp"
#include "util/scope.hpp"
#include "util/sys/process.hpp"
#include "util/sys/syscalls.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <memory>
#include <mutex>
#include <optional>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

namespace strata::runner {

using detail::Op;
using detail::OpKind;
using detail::Plan;
using detail::Step;

// ---------------------------------------------------------------------------
// Capabilities

std::uint64_t default_capabilities() noexcept {
    constexpr int caps[] = {CAP_CHOWN,   CAP_DAC_OVERRIDE, CAP_FSETID,           CAP_FOWNER,
                            CAP_MKNOD,   CAP_NET_RAW,      CAP_SETGID,           CAP_SETUID,
                            CAP_SETFCAP, CAP_SETPCAP,      CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
                            CAP_KILL,    CAP_AUDIT_WRITE};
    std::uint64_t mask = 0;
    for (int c : caps) {
        mask |= std::uint64_t{1} << c;
    }
    return mask;
}

std::string capability_name(int cap) {
    static const char* const names[] = {"CHOWN",
                                        "DAC_OVERRIDE",
                                        "DAC_READ_SEARCH",
                                        "FOWNER",
                                        "FSETID",
                                        "KILL",
                                        "SETGID",
                                        "SETUID",
                                        "SETPCAP",
                                        "LINUX_IMMUTABLE",
                                        "NET_BIND_SERVICE",
                                        "NET_BROADCAST",
                                        "NET_ADMIN",
                                        "NET_RAW",
                                        "IPC_LOCK",
                                        "IPC_OWNER",
                                        "SYS_MODULE",
                                        "SYS_RAWIO",
                                        "SYS_CHROOT",
                                        "SYS_PTRACE",
                                        "SYS_PACCT",
                                        "SYS_ADMIN",
                                        "SYS_BOOT",
                                        "SYS_NICE",
                                        "SYS_RESOURCE",
                                        "SYS_TIME",
                                        "SYS_TTY_CONFIG",
                                        "MKNOD",
                                        "LEASE",
                                        "AUDIT_WRITE",
                                        "AUDIT_CONTROL",
                                        "SETFCAP",
                                        "MAC_OVERRIDE",
                                        "MAC_ADMIN",
                                        "SYSLOG",
                                        "WAKE_ALARM",
                                        "BLOCK_SUSPEND",
                                        "AUDIT_READ",
                                        "PERFMON",
                                        "BPF",
                                        "CHECKPOINT_RESTORE"};
    if (cap >= 0 && static_cast<std::size_t>(cap) < std::size(names)) {
        return std::string("CAP_") + names[cap];
    }
    return "CAP_" + std::to_string(cap);
}

namespace {

// "sys_admin", "CAP_SYS_ADMIN", "Sys_Admin" -> 21; "ALL" -> -1. As Docker's
// NormalizeLegacyCapabilities: unknown names are refused.
int capability_number(const std::string& name, int cap_last) {
    std::string upper = name;
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (upper == "ALL") {
        return -1;
    }
    if (upper.rfind("CAP_", 0) != 0) {
        upper = "CAP_" + upper;
    }
    for (int c = 0; c <= cap_last; ++c) {
        if (capability_name(c) == upper) {
            return c;
        }
    }
    throw UsageError("unknown capability: \"" + upper + "\"");
}

} // namespace

std::uint64_t container_capabilities(const Security& security) {
    const int cap_last = sys::cap_last_cap();
    // "Every capability": those of this kernel that strata's own bounding
    // set still holds (a strata itself confined cannot give more).
    std::uint64_t all = 0;
    for (int c = 0; c <= cap_last && c < 64; ++c) {
        if (::prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1) {
            all |= std::uint64_t{1} << c;
        }
    }
    // Names are checked even when privileged makes them moot, as Docker does.
    bool add_all = false, drop_all = false;
    std::uint64_t add = 0, drop = 0;
    for (const auto& n : security.cap_add) {
        int c = capability_number(n, cap_last);
        c < 0 ? (void)(add_all = true) : (void)(add |= std::uint64_t{1} << c);
    }
    for (const auto& n : security.cap_drop) {
        int c = capability_number(n, cap_last);
        c < 0 ? (void)(drop_all = true) : (void)(drop |= std::uint64_t{1} << c);
    }
    if (security.privileged) {
        return all;
    }
    if (add_all) {
        return all & ~drop;
    }
    if (drop_all) {
        return add;
    }
    return ((default_capabilities() & ~drop) | add) & all;
}

// ---------------------------------------------------------------------------
// Control

Control::Control() : m_pipe(Pipe::create()) {
    for (int fd : {m_pipe.read.get(), m_pipe.write.get()}) {
        int flags = ::fcntl(fd, F_GETFL);
        if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
            throw_errno("fcntl O_NONBLOCK", "control pipe");
        }
    }
}

namespace {

using detail::k_event_cancel;
using detail::k_event_signal_base;
using detail::k_event_winch;

void send_event(int fd, unsigned char byte) noexcept {
    int saved = errno;
    ssize_t ignored = ::write(fd, &byte, 1);
    (void)ignored;
    errno = saved;
}

} // namespace

void Control::cancel() noexcept {
    send_event(m_pipe.write.get(), k_event_cancel);
}
void Control::window_changed() noexcept {
    send_event(m_pipe.write.get(), k_event_winch);
}
void Control::forward(int sig) noexcept {
    if (sig > 0 && sig < 64) {
        send_event(m_pipe.write.get(), static_cast<unsigned char>(k_event_signal_base + sig));
    }
}

// ---------------------------------------------------------------------------
// Plan helpers

namespace detail {

std::string hosts_file(const std::string& hostname,
                       const std::vector<std::pair<std::string, std::string>>& extra,
                       Network network, const std::string& hosts_address) {
    std::string out;
    if (network == Network::host) {
        // As Docker with --network host: the host's own hosts file.
        try {
            UniqueFd fd(::open("/etc/hosts", O_RDONLY | O_CLOEXEC));
            if (fd) {
                char buf[4096];
                ssize_t n;
                while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) {
                    out.append(buf, static_cast<std::size_t>(n));
                }
            }
        } catch (...) {
        }
        if (!out.empty() && out.back() != '\n') {
            out += '\n';
        }
    }
    if (out.empty()) {
        out = "127.0.0.1\tlocalhost\n"
              "::1\tlocalhost ip6-localhost ip6-loopback\n"
              "fe00::0\tip6-localnet\n"
              "ff00::0\tip6-mcastprefix\n"
              "ff02::1\tip6-allnodes\n"
              "ff02::2\tip6-allrouters\n";
        // With no network of its own the container's name still resolves, as
        // in BuildKit's sandbox; on a bridge, to its own address (Docker's).
        out += (hosts_address.empty() ? std::string("127.0.0.1") : hosts_address) + "\t" +
               hostname + "\n";
    }
    for (const auto& [name, address] : extra) {
        out += address + "\t" + name + "\n";
    }
    return out;
}

std::string resolv_conf(Network network) {
    std::string host;
    UniqueFd fd(::open("/etc/resolv.conf", O_RDONLY | O_CLOEXEC));
    if (fd) {
        char buf[4096];
        ssize_t n;
        while ((n = ::read(fd.get(), buf, sizeof buf)) > 0 && host.size() < (1u << 20)) {
            host.append(buf, static_cast<std::size_t>(n));
        }
    }
    if (network == Network::host) {
        return host;
    }
    // Own network namespace: a nameserver on the host's loopback cannot be
    // reached from here, so those lines go, and Docker's defaults stand in
    // when nothing is left.
    std::string out;
    bool have_ns = false;
    std::size_t i = 0;
    while (i < host.size()) {
        std::size_t j = host.find('\n', i);
        if (j == std::string::npos) {
            j = host.size();
        }
        std::string line = host.substr(i, j - i);
        i = j + 1;
        if (line.rfind("nameserver", 0) == 0) {
            auto addr = line.substr(10);
            addr.erase(0, addr.find_first_not_of(" \t"));
            if (addr.rfind("127.", 0) == 0 || addr.rfind("::1", 0) == 0) {
                continue;
            }
            have_ns = true;
        }
        out += line + "\n";
    }
    if (!have_ns) {
        out += "nameserver 8.8.8.8\nnameserver 8.8.4.4\n";
    }
    return out;
}

namespace {

bool has_key(const std::vector<std::string>& env, std::string_view key) {
    for (const auto& e : env) {
        if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=') {
            return true;
        }
    }
    return false;
}

} // namespace

std::vector<std::string> container_env(const RunSpec& spec, const ExecUser& user,
                                       const std::string& hostname) {
    std::vector<std::string> env;
    // Later entries for the same key win, as with `docker run -e`.
    for (const auto& e : spec.env) {
        auto eq = e.find('=');
        if (eq == std::string::npos || eq == 0) {
            throw UsageError("invalid environment variable \"" + e + "\": expected KEY=VALUE");
        }
        std::string key = e.substr(0, eq + 1);
        std::erase_if(env, [&](const std::string& x) { return x.rfind(key, 0) == 0; });
        env.push_back(e);
    }
    std::vector<std::string> front;
    if (!has_key(env, "PATH")) {
        front.push_back(std::string("PATH=") + k_default_path);
    }
    if (!has_key(env, "HOSTNAME")) {
        front.push_back("HOSTNAME=" + hostname);
    }
    if (spec.tty && !has_key(env, "TERM")) {
        front.push_back("TERM=xterm");
    }
    if (!has_key(env, "HOME")) {
        env.push_back("HOME=" + user.home);
    }
    env.insert(env.begin(), front.begin(), front.end());
    return env;
}

std::vector<std::string> exec_candidates(const std::string& argv0,
                                         const std::vector<std::string>& env) {
    if (argv0.find('/') != std::string::npos) {
        return {argv0};
    }
    std::string path = k_default_path;
    for (const auto& e : env) {
        if (e.rfind("PATH=", 0) == 0) {
            path = e.substr(5);
        }
    }
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i <= path.size()) {
        std::size_t j = path.find(':', i);
        if (j == std::string::npos) {
            j = path.size();
        }
        std::string dir = path.substr(i, j - i);
        if (dir.empty()) {
            dir = ".";
        }
        out.push_back(dir + "/" + argv0);
        i = j + 1;
    }
    return out;
}

std::string step_text(Step step) {
    switch (step) {
    case Step::wait_parent:
        return "waiting for strata";
    case Step::signals:
        return "resetting signals";
    case Step::make_private:
        return "making the mounts private";
    case Step::bind_root:
        return "binding the root directory";
    case Step::open_root:
        return "opening the root directory";
    case Step::mount_target:
        return "creating the mount point for";
    case Step::mount:
        return "mounting";
    case Step::remount_ro:
        return "making read-only:";
    case Step::workdir:
        return "creating the working directory";
    case Step::pivot_root:
        return "pivot_root";
    case Step::detach_old_root:
        return "detaching the old root";
    case Step::hostname:
        return "setting the hostname";
    case Step::loopback:
        return "bringing up the loopback interface";
    case Step::rlimit:
        return "setting rlimit";
    case Step::groups:
        return "setting the supplementary groups";
    case Step::gid:
        return "setting the gid";
    case Step::uid:
        return "setting the uid";
    case Step::cap_bounding:
        return "dropping a capability from the bounding set";
    case Step::cap_ambient:
        return "clearing the ambient capabilities";
    case Step::capset:
        return "setting the capabilities";
    case Step::no_new_privs:
        return "setting no_new_privs";
    case Step::stdio:
        return "setting up the standard streams";
    case Step::setsid:
        return "creating a session";
    case Step::controlling_tty:
        return "setting the controlling terminal";
    case Step::console:
        return "allocating the container's terminal";
    case Step::close_fds:
        return "closing file descriptors";
    case Step::chdir:
        return "changing to the working directory";
    case Step::exec:
        return "exec";
    case Step::fork_init:
        return "starting docker-init";
    case Step::session_keyring:
        return "creating the container's session keyring";
    case Step::seccomp:
        return "loading the seccomp filter of";
    case Step::target_symlink:
        return "refusing a symlink as mount point for";
    case Step::target_type:
        return "refusing a mount point of the wrong type for";
    case Step::mask_verify:
        return "verifying the procfs/sysfs mount for";
    case Step::cgroup:
        return "joining the container's cgroup";
    case Step::cgroupns:
        return "creating the cgroup namespace";
    case Step::device:
        return "creating a device node";
    case Step::join_namespace:
        return "joining the container's namespace";
    case Step::fork_exec:
        return "forking in the container's PID namespace";
    }
    return "step " + std::to_string(static_cast<int>(step));
}

} // namespace detail

// ---------------------------------------------------------------------------
// Container

struct Container::State {
    pid_t pid = -1;
    UniqueFd pidfd;
    bool tty = false;
    bool reaped = false;
    UniqueFd master;     // tty: the pty's master side
    int tty_in = -1;     // tty: copied to the master
    int tty_out = -1;    // tty: the master's output goes here
    int winsize_fd = -1; // tty: where the caller's window size is read
    // Mount points strata created in the root directory, outermost first;
    // removed (when still empty) once the container is gone, so that a
    // build step's layer does not gain an empty /etc/hosts or /proc.
    UniqueFd rootfd;
    std::vector<std::string> created;
    CreatedMountPoints made; // what created held, for the caller (kept after removal)
    // The container's cgroup (real root only): removed once it has ended.
    Cgroup cgroup;
    bool oom_killed = false; // read from the cgroup before it goes

    void remove_created() noexcept;
    void remove_cgroup() noexcept {
        try {
            if (!cgroup.paths().empty()) {
                oom_killed = cgroup.oom_killed();
            }
        } catch (const std::exception& e) {
            STRATA_LOG_WARN("{}", e.what());
        }
        try {
            cgroup.remove();
        } catch (const std::exception& e) {
            STRATA_LOG_WARN("{}", e.what());
        }
    }

    void signal(int sig) noexcept {
        if (!reaped && pidfd) {
            sys::pidfd_send_signal(pidfd.get(), sig);
        }
    }

    ExitStatus reap() {
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                throw_errno("waitpid", "container " + std::to_string(pid));
            }
        }
        reaped = true;
        remove_created();
        remove_cgroup();
        return ExitStatus(status);
    }

    // The container's PID 1 is gone from the kernel's point of view: kill it
    // (the PID namespace and every mount in it go with it) and reap it.
    void kill_and_reap() noexcept {
        if (!reaped && pid > 0) {
            signal(SIGKILL);
            int status;
            while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
        }
        reaped = true;
        remove_created();
        remove_cgroup();
    }
};

void Container::State::remove_created() noexcept {
    for (auto it = created.rbegin(); it != created.rend(); ++it) {
        try {
            ParentRef p = open_parent_in_root(rootfd.get(), *it);
            struct stat st;
            if (::fstatat(p.dir.get(), p.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
                continue;
            }
            if (S_ISDIR(st.st_mode)) {
                ::unlinkat(p.dir.get(), p.name.c_str(), AT_REMOVEDIR); // kept when not empty
            } else if (S_ISREG(st.st_mode) && st.st_size == 0) {
                ::unlinkat(p.dir.get(), p.name.c_str(), 0);
            }
        } catch (const std::exception& e) {
            STRATA_LOG_DEBUG("leaving mount point {}: {}", *it, e.what());
        }
    }
    created.clear();
}

namespace {

std::string random_hostname() {
    unsigned char bytes[6];
    if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) {
        throw_errno("getrandom");
    }
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char b : bytes) {
        out += hex[b >> 4];
        out += hex[b & 15];
    }
    return out;
}

bool is_absolute(const std::string& p) {
    return !p.empty() && p[0] == '/';
}

// Probed once: can this kernel (and this process) use fsopen & co? Set
// STRATA_FORCE_FALLBACK=1 to exercise the mount(2) path.
bool new_mount_api() {
    static const bool ok = [] {
        if (sys::force_fallback()) {
            STRATA_LOG_DEBUG("runner: mount(2) forced by STRATA_FORCE_FALLBACK");
            return false;
        }
        int fd = sys::fsopen_raw("tmpfs", FSOPEN_CLOEXEC);
        if (fd < 0) {
            STRATA_LOG_DEBUG("runner: no new mount API ({}), using mount(2)", std::strerror(-fd));
            return false;
        }
        UniqueFd closer(fd);
        return true;
    }();
    return ok;
}

std::size_t depth(const std::string& p) {
    return static_cast<std::size_t>(std::count(p.begin(), p.end(), '/'));
}

const char* rlimit_name(int r) {
    switch (r) {
    case RLIMIT_CPU:
        return "RLIMIT_CPU";
    case RLIMIT_FSIZE:
        return "RLIMIT_FSIZE";
    case RLIMIT_DATA:
        return "RLIMIT_DATA";
    case RLIMIT_STACK:
        return "RLIMIT_STACK";
    case RLIMIT_CORE:
        return "RLIMIT_CORE";
    case RLIMIT_RSS:
        return "RLIMIT_RSS";
    case RLIMIT_NPROC:
        return "RLIMIT_NPROC";
    case RLIMIT_NOFILE:
        return "RLIMIT_NOFILE";
    case RLIMIT_MEMLOCK:
        return "RLIMIT_MEMLOCK";
    case RLIMIT_AS:
        return "RLIMIT_AS";
    case RLIMIT_LOCKS:
        return "RLIMIT_LOCKS";
    case RLIMIT_SIGPENDING:
        return "RLIMIT_SIGPENDING";
    case RLIMIT_MSGQUEUE:
        return "RLIMIT_MSGQUEUE";
    case RLIMIT_NICE:
        return "RLIMIT_NICE";
    case RLIMIT_RTPRIO:
        return "RLIMIT_RTPRIO";
    case RLIMIT_RTTIME:
        return "RLIMIT_RTTIME";
    }
    return "RLIMIT_?";
}

std::string limit_text(rlim_t v) {
    return v == RLIM_INFINITY ? "unlimited" : std::to_string(v);
}

// A device node to create in the container, from the host's.
struct HostDevice {
    std::string host_path;
    std::string container_path;
    unsigned mode = 0; // st_mode: type and permissions
    unsigned long long rdev = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    std::string access = "rwm";
};

// stat of a host device node; nullopt when path is not one.
std::optional<HostDevice> host_device(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
        throw_errno("stat", path);
    }
    if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
        return std::nullopt;
    }
    HostDevice d;
    d.host_path = path;
    d.container_path = path;
    d.mode = st.st_mode;
    d.rdev = st.st_rdev;
    d.uid = st.st_uid;
    d.gid = st.st_gid;
    return d;
}

// --privileged: every device node of the host's /dev, as runc's HostDevices
// (not the pts, shm, mqueue or fd directories, nor /dev/console), except
// those the runner already provides.
void host_devices(const std::string& dir, std::vector<HostDevice>& out) {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
        throw_errno("opendir", dir);
    }
    std::unique_ptr<DIR, int (*)(DIR*)> closer(d, ::closedir);
    while (struct dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        std::string path = dir + "/" + name;
        if (name == "." || name == "..") {
            continue;
        }
        struct stat st;
        if (::lstat(path.c_str(), &st) != 0) {
            continue; // gone meanwhile
        }
        if (S_ISDIR(st.st_mode)) {
            if (dir == "/dev" && (name == "pts" || name == "shm" || name == "mqueue" ||
                                  name == "fd" || name == ".lxc" || name == ".udev")) {
                continue;
            }
            host_devices(path, out);
            continue;
        }
        if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
            continue;
        }
        if (path == "/dev/console" || path == "/dev/ptmx" || path == "/dev/null" ||
            path == "/dev/zero" || path == "/dev/full" || path == "/dev/random" ||
            path == "/dev/urandom" || path == "/dev/tty") {
            continue;
        }
        HostDevice h;
        h.host_path = h.container_path = path;
        h.mode = st.st_mode;
        h.rdev = st.st_rdev;
        h.uid = st.st_uid;
        h.gid = st.st_gid;
        out.push_back(std::move(h));
    }
}

// The devices the container gets beyond the standard ones: --device's
// (Docker's checks and wording) and, with --privileged, the host's.
std::vector<HostDevice> container_devices(const Security& sec) {
    std::vector<HostDevice> out;
    if (sec.privileged) {
        host_devices("/dev", out);
    }
    for (const auto& d : sec.devices) {
        std::optional<HostDevice> h;
        try {
            h = host_device(d.host_path);
        } catch (const SysError& e) {
            throw UsageError("error gathering device information while adding custom device \"" +
                             d.host_path + "\": " + std::strerror(e.error_code()));
        }
        if (!h) {
            throw UsageError("error gathering device information while adding custom device \"" +
                             d.host_path + "\": not a device node");
        }
        h->container_path = clean_path(d.container_path.empty() ? d.host_path : d.container_path);
        if (h->container_path == "/") {
            throw UsageError("--device " + d.host_path + ": cannot create a device at /");
        }
        h->access = device_access(d.permissions);
        std::erase_if(out,
                      [&](const HostDevice& x) { return x.container_path == h->container_path; });
        out.push_back(*h);
    }
    return out;
}

// Builds the standard mounts and the caller's into plan.ops.
void plan_mounts(Plan& plan, const RunSpec& spec, bool no_tty_gid, const std::string& hostname,
                 const std::vector<HostDevice>& devices, std::vector<std::string>& op_names) {
    auto add = [&](Op op, std::string name) {
        op_names.push_back(std::move(name));
        plan.ops.push_back(op);
    };
    auto fs = [&](const char* target, const char* type, unsigned long flags, const char* data) {
        Op op;
        op.kind = OpKind::fs;
        op.target = target;
        op.fstype = type;
        op.source = type;
        op.flags = flags;
        op.data = data;
        add(op, std::string(type) + " on " + target);
    };
    const unsigned long nsd = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    const bool privileged = spec.security.privileged;
    // /proc, /sys, /dev and everything the runner puts below them: no
    // symlink on the way (runc's rule since CVE-2019-19921).
    auto strict = [&] { plan.ops.back().no_symlinks = true; };
    fs("/proc", "proc", nsd, nullptr);
    strict();
    plan.ops.back().keep_mount = detail::k_mount_proc;
    // Device nodes work here (the standard ones, --device's) but nothing
    // runs from it or gains privileges through it.
    fs("/dev", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_STRICTATIME, "mode=755,size=65536k");
    strict();
    for (const char* dev : {"null", "zero", "full", "random", "urandom", "tty"}) {
        Op op;
        op.kind = OpKind::bind;
        op.target = plan.keep(std::string("/dev/") + dev);
        op.target_dir = false;
        op.source = op.target; // the host's device node (before pivot_root)
        op.no_symlinks = true;
        add(op, std::string("bind /dev/") + dev);
    }
    fs("/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
       no_tty_gid ? "newinstance,ptmxmode=0666,mode=0620"
                  : "newinstance,ptmxmode=0666,mode=0620,gid=5");
    strict();
    fs("/dev/shm", "tmpfs", nsd, "mode=1777,size=65536k");
    strict();
    fs("/dev/mqueue", "mqueue", nsd, nullptr);
    strict();
    for (auto [link, to] : {std::pair{"/dev/ptmx", "pts/ptmx"},
                            {"/dev/fd", "/proc/self/fd"},
                            {"/dev/stdin", "/proc/self/fd/0"},
                            {"/dev/stdout", "/proc/self/fd/1"},
                            {"/dev/stderr", "/proc/self/fd/2"},
                            {"/dev/core", "/proc/kcore"}}) {
        Op op;
        op.kind = OpKind::symlink;
        op.target = link;
        op.content = to;
        op.no_symlinks = true;
        add(op, std::string("symlink ") + link);
    }
    for (const auto& d : devices) {
        Op op;
        op.kind = OpKind::device;
        op.target = plan.keep(d.container_path);
        op.target_dir = false;
        op.source = plan.keep(d.host_path);
        op.no_symlinks = true;
        op.dev_mode = d.mode;
        op.rdev = d.rdev;
        op.dev_uid = d.uid;
        op.dev_gid = d.gid;
        add(op, "device " + d.host_path + " on " + d.container_path);
    }
    {
        Op op;
        op.kind = OpKind::fs;
        op.target = "/sys";
        op.fstype = "sysfs";
        op.source = "sysfs";
        // --privileged: /sys writable, as Docker.
        op.flags = nsd | (privileged ? 0 : MS_RDONLY);
        op.read_only = !privileged;
        op.sys_fallback = true;
        op.no_symlinks = true;
        op.keep_mount = detail::k_mount_sys;
        add(op, "sysfs on /sys");
    }
    // Docker's masked and read-only paths (moby's oci/defaults.go), none
    // with --privileged. Each is resolved below the procfs/sysfs just
    // mounted (Op::base), not through a path in the image.
    if (!privileged) {
        for (const char* p :
             {"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
              "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
              "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}) {
            Op op;
            op.kind = OpKind::mask;
            op.base = p[1] == 'p' ? detail::k_mount_proc : detail::k_mount_sys;
            op.target = p + (op.base == detail::k_mount_proc ? 6 : 5); // below /proc/ or /sys/
            add(op, std::string("masking ") + p);
        }
        for (const char* p :
             {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}) {
            Op op;
            op.kind = OpKind::readonly;
            op.base = detail::k_mount_proc;
            op.target = p + 6;
            add(op, std::string("read-only ") + p);
        }
    }
    // Generated files, bound over the root's own: writes never reach it.
    auto gen = [&](const char* target, std::string content) {
        Op op;
        op.kind = OpKind::gen_file;
        op.target = target;
        op.target_dir = false;
        const char* c = plan.keep(std::move(content));
        op.content = c;
        op.content_len = std::strlen(c);
        add(op, std::string("bind generated ") + target);
    };
    gen("/etc/hostname", hostname + "\n");
    gen("/etc/hosts",
        detail::hosts_file(hostname, spec.extra_hosts, spec.network, spec.hosts_address));
    gen("/etc/resolv.conf",
        spec.resolv_conf.empty() ? detail::resolv_conf(spec.network) : spec.resolv_conf);

    // The caller's mounts, parents before children (as Docker sorts them).
    std::vector<const Mount*> mounts;
    for (const auto& m : spec.mounts) {
        mounts.push_back(&m);
    }
    std::stable_sort(mounts.begin(), mounts.end(), [](const Mount* a, const Mount* b) {
        return depth(clean_path(a->target)) < depth(clean_path(b->target));
    });
    for (const Mount* m : mounts) {
        if (!is_absolute(m->target)) {
            throw UsageError("mount target \"" + m->target + "\" is not an absolute path");
        }
        std::string target = clean_path(m->target);
        if (target == "/") {
            throw UsageError("mount target \"" + m->target + "\": cannot mount over /");
        }
        Op op;
        op.target = plan.keep(target);
        op.read_only = m->read_only;
        for (const char* top : {"/proc/", "/sys/", "/dev/"}) {
            op.no_symlinks = op.no_symlinks || target.rfind(top, 0) == 0;
        }
        std::string what;
        switch (m->type) {
        case Mount::Type::tmpfs:
            op.kind = OpKind::fs;
            op.fstype = "tmpfs";
            op.source = "tmpfs";
            op.flags = MS_NOSUID | MS_NODEV | (m->read_only ? MS_RDONLY : 0);
            op.read_only = false;
            op.data = m->options.empty() ? nullptr : plan.keep(m->options);
            what = "tmpfs on " + target;
            break;
        case Mount::Type::cache:
            if (!is_absolute(m->source)) {
                throw UsageError("cache mount source \"" + m->source + "\" is not absolute");
            }
            if (::mkdir(m->source.c_str(), 0755) != 0 && errno != EEXIST) {
                throw_errno("mkdir", m->source);
            }
            // What one step leaves in a cache is not part of any image: a
            // setuid binary or a device node planted there has no effect, in
            // the container or anywhere else the directory is reached.
            op.flags = MS_NOSUID | MS_NODEV;
            [[fallthrough]];
        case Mount::Type::bind: {
            if (m->source.empty()) {
                throw UsageError("bind mount on \"" + m->target + "\" has no source");
            }
            struct stat st;
            if (::stat(m->source.c_str(), &st) != 0) {
                throw_errno("bind mount source", m->source);
            }
            op.kind = OpKind::bind;
            op.source = plan.keep(m->source);
            op.target_dir = S_ISDIR(st.st_mode);
            what = "bind " + m->source + " on " + target;
            break;
        }
        }
        add(op, what);
    }
}

// Creates the missing components of target inside the root (directories,
// the last one an empty file unless dir) and appends what it created to
// created. A dangling symlink on the way is left to the child, which
// creates the path where the link points, inside the root. made gets the
// same paths and, before the first creation, the existing directories above.
void precreate(int rootfd, const std::string& target, bool dir, std::vector<std::string>& created,
               CreatedMountPoints& made) {
    std::string prefix;
    std::vector<std::string> above; // existing components passed so far
    std::size_t i = 1;
    while (i <= target.size()) {
        std::size_t j = target.find('/', i);
        if (j == std::string::npos) {
            j = target.size();
        }
        bool last = j == target.size();
        prefix = target.substr(0, j);
        i = j + 1;
        try {
            open_in_root(rootfd, prefix, O_PATH);
            above.push_back(prefix);
            continue; // exists
        } catch (const SysError& e) {
            if (e.error_code() != ENOENT) {
                return; // the child reports it with the mount's name
            }
        }
        for (const auto& a : above) {
            auto seen = [&](const auto& entry) { return entry.first == a; };
            if (std::find(made.paths.begin(), made.paths.end(), a) != made.paths.end() ||
                std::any_of(made.parents.begin(), made.parents.end(), seen)) {
                continue;
            }
            try {
                UniqueFd fd = open_in_root(rootfd, a, O_PATH | O_NOFOLLOW);
                struct stat st;
                if (::fstat(fd.get(), &st) == 0) {
                    made.parents.emplace_back(a, st);
                }
            } catch (const Error&) {
            }
        }
        above.clear();
        ParentRef p = open_parent_in_root(rootfd, prefix);
        int r;
        if (last && !dir) {
            r = ::openat(p.dir.get(), p.name.c_str(),
                         O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
            UniqueFd closer(r);
        } else {
            r = ::mkdirat(p.dir.get(), p.name.c_str(), 0755);
        }
        if (r < 0) {
            if (errno == EEXIST) {
                return; // a dangling symlink
            }
            throw_errno("creating mount point", prefix);
        }
        created.push_back(prefix);
        made.paths.push_back(prefix);
    }
}

// Copies everything readable from `from` to `to`; false at EOF or error.
bool pump(int from, int to) {
    char buf[16384];
    ssize_t n = ::read(from, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return true;
    }
    if (n <= 0) {
        return false;
    }
    std::size_t done = 0;
    while (done < static_cast<std::size_t>(n)) {
        ssize_t w = ::write(to, buf + done, static_cast<std::size_t>(n) - done);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                struct pollfd p {
                    to, POLLOUT, 0
                };
                ::poll(&p, 1, 1000);
                continue;
            }
            return false;
        }
        done += static_cast<std::size_t>(w);
    }
    return true;
}

void copy_window_size(int from, int master) {
    struct winsize ws;
    if (from >= 0 && ::ioctl(from, TIOCGWINSZ, &ws) == 0) {
        ::ioctl(master, TIOCSWINSZ, &ws);
    }
}

// The container's seccomp filter into plan, compiled here so that the child
// only loads it: Docker's default profile unless the spec names another or
// none (unconfined, or privileged, as Docker). A profile that cannot be read
// or compiled stops the container (exit 125). Returns the profile's name for
// messages.
std::string plan_seccomp(Plan& plan, const RunSpec& spec) {
    const Security& sec = spec.security;
    if (sec.privileged || sec.seccomp_profile == "unconfined") {
        return "unconfined";
    }
    const bool builtin = sec.seccomp_profile.empty();
    std::string name = builtin ? std::string("builtin (Docker's default)")
                       : sec.seccomp_profile_source.empty() ? std::string("given in the run spec")
                                                            : sec.seccomp_profile_source;
    try {
        // The default profile compiles the same way for the same capabilities
        // (most containers): compiled once per process and capability set.
        static std::mutex mutex;
        static std::vector<std::pair<std::uint64_t, SeccompProgram>> cache;
        std::unique_lock lock(mutex, std::defer_lock);
        if (builtin) {
            lock.lock();
            for (const auto& [caps, program] : cache) {
                if (caps == plan.caps) {
                    plan.seccomp = program;
                }
            }
        }
        if (builtin && plan.seccomp.code.empty()) {
            if (auto pre = precompiled_default_seccomp(plan.caps)) {
                plan.seccomp = std::move(*pre);
            }
        }
        if (plan.seccomp.code.empty()) {
            SeccompProfile profile = parse_seccomp_profile(
                builtin ? docker_default_seccomp_profile() : std::string_view(sec.seccomp_profile),
                name);
            plan.seccomp = compile_seccomp(profile, plan.caps);
            if (builtin) {
                cache.emplace_back(plan.caps, plan.seccomp);
            }
        }
    } catch (const Error& e) {
        throw StartError(e.what(), 125);
    }
    plan.seccomp_fprog.len = static_cast<unsigned short>(plan.seccomp.code.size());
    plan.seccomp_fprog.filter = plan.seccomp.code.data();
    return "seccomp profile \"" + name + "\"";
}

// Is this process in the initial user namespace (where root is real root)?
bool initial_user_namespace() {
    UniqueFd fd(::open("/proc/self/uid_map", O_RDONLY | O_CLOEXEC));
    if (!fd) {
        throw_errno("open", "/proc/self/uid_map");
    }
    char buf[256];
    ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
    if (n < 0) {
        throw_errno("read", "/proc/self/uid_map");
    }
    buf[n] = '\0';
    unsigned long inside = 1, outside = 1, count = 0;
    return std::sscanf(buf, "%lu %lu %lu", &inside, &outside, &count) == 3 && inside == 0 &&
           outside == 0 && count == 4294967295UL && std::strchr(buf, '\n') == buf + n - 1;
}

// The container's cgroup with Docker's device policy (everything with
// --privileged), plus --device's nodes with their permissions, and its
// resource limits. Fails closed: a root container without its device cgroup
// or one of its limits does not start.
Cgroup container_cgroup(const RunSpec& spec, const std::vector<HostDevice>& devices) {
    const Security& sec = spec.security;
    std::string id =
        spec.cgroup_name.empty() ? random_hostname() + random_hostname() : spec.cgroup_name;
    Resources limits = spec.resources;
    try {
        // Docker's checks again (a spec that does not come from the CLI);
        // the CLI has shown the warnings of what this host cannot do.
        verify_resources(limits, host_support());
    } catch (const std::exception& e) {
        throw StartError(std::string("container setup: resource limits: ") + e.what(), 125);
    }
    try {
        // A named container (a record others pause and read stats of) or
        // one with limits joins every controller; a build step or a bare
        // `run --rm` only the devices one, as before (fewer directories to
        // make and remove per start).
        std::vector<std::string> optional;
        if (!spec.cgroup_name.empty() || limits.any()) {
            optional.assign(container_controllers().begin() + 1, container_controllers().end());
        }
        Cgroup cg = Cgroup::create("strata", id, {"devices"}, optional);
        std::vector<DeviceRule> rules;
        if (sec.privileged) {
            rules.push_back({'a', -1, -1, "rwm", true});
        } else {
            rules = default_device_rules();
            for (const auto& d : devices) {
                rules.push_back({S_ISBLK(d.mode) ? 'b' : 'c',
                                 static_cast<std::int64_t>(major(static_cast<dev_t>(d.rdev))),
                                 static_cast<std::int64_t>(minor(static_cast<dev_t>(d.rdev))),
                                 d.access, true});
            }
        }
        cg.set_devices(rules);
        try {
            cg.apply(limits);
        } catch (const std::exception& e) {
            throw StartError(std::string("container setup: resource limits: ") + e.what(), 125);
        }
        return cg;
    } catch (const StartError&) {
        throw;
    } catch (const std::exception& e) {
        throw StartError(std::string("container setup: the container's device cgroup: ") + e.what(),
                         125);
    }
}

// "fs on /target" -> what the refusal says is being mounted.
std::string mount_what(const Op& op) {
    switch (op.kind) {
    case OpKind::fs: {
        std::string t = op.fstype;
        if (t == "proc") {
            return "procfs";
        }
        if (t == "sysfs" || t == "devpts" || t == "mqueue") {
            return t;
        }
        return "a " + t;
    }
    case OpKind::bind:
        return std::string("a bind mount of ") + op.source;
    case OpKind::gen_file:
        return std::string("the generated ") + op.target;
    case OpKind::device:
        return std::string("the device ") + op.source;
    case OpKind::symlink:
        return std::string("the symlink ") + op.target;
    case OpKind::mask:
    case OpKind::readonly:
        break;
    }
    return "a mask";
}

// The messages of the isolation steps (Report r from the child).
std::string isolation_message(const detail::Report& r, const std::vector<std::string>& op_names,
                              const std::vector<Op>& ops, const Cgroup& cgroup) {
    auto step = static_cast<Step>(r.step);
    bool has_op = r.index >= 0 && static_cast<std::size_t>(r.index) < ops.size();
    std::string err = std::strerror(r.err);
    std::string detail = r.detail;
    if (step == Step::target_symlink && has_op) {
        auto tab = detail.find('\t');
        std::string path = detail.substr(0, tab);
        std::string link = tab == std::string::npos ? std::string() : detail.substr(tab + 1);
        return "container setup: \"" + path + "\" in the image is a symlink (\"" + link +
               "\"): refusing to mount " + mount_what(ops[static_cast<std::size_t>(r.index)]) +
               " through it";
    }
    if (step == Step::target_type && has_op) {
        const Op& op = ops[static_cast<std::size_t>(r.index)];
        std::string kind = r.err == ENOTDIR  ? "is not a directory"
                           : r.err == EISDIR ? "is a directory"
                                             : "is not a regular file";
        return "container setup: \"" + detail + "\" in the image " + kind + ": refusing to mount " +
               mount_what(op) + " on \"" + op.target + "\"";
    }
    if (step == Step::mask_verify && has_op) {
        return "container setup: " + op_names[static_cast<std::size_t>(r.index)] +
               ": not on the container's own procfs/sysfs (" + err +
               "); refusing to start without it";
    }
    if (step == Step::device && has_op) {
        return "container setup: creating " + op_names[static_cast<std::size_t>(r.index)] + ": " +
               err;
    }
    std::string path = r.index >= 0 && static_cast<std::size_t>(r.index) < cgroup.paths().size()
                           ? cgroup.paths()[static_cast<std::size_t>(r.index)]
                           : std::string("(the container's cgroup)");
    return "container setup: joining the cgroup " + path + ": " + err;
}

} // namespace

namespace detail {

std::string plan_security_seccomp(Plan& plan, const Security& security) {
    RunSpec spec;
    spec.security = security;
    return plan_seccomp(plan, spec);
}

bool pump_stream(int from, int to) {
    return pump(from, to);
}

void copy_winsize(int from, int master) {
    copy_window_size(from, master);
}

} // namespace detail

Container Container::start(const RunSpec& spec) {
    // -- Validate the spec and compute everything the child will need.
    if (spec.rootfs.empty()) {
        throw UsageError("no root directory given");
    }
    if (spec.argv.empty() || spec.argv[0].empty()) {
        throw UsageError("no command given");
    }
    if (!is_absolute(spec.cwd)) {
        throw UsageError("working directory \"" + spec.cwd + "\" is not an absolute path");
    }
    char* real = ::realpath(spec.rootfs.c_str(), nullptr);
    if (real == nullptr) {
        throw_errno("root directory", spec.rootfs);
    }
    std::string rootfs(real);
    std::free(real);
    UniqueFd rootfd(::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!rootfd) {
        throw_errno("open root directory", rootfs);
    }

    const bool root = ::geteuid() == 0;
    const bool joined = spec.user_namespace == UserNamespace::joined;
    bool userns = spec.user_namespace == UserNamespace::always ||
                  (spec.user_namespace == UserNamespace::automatic && !root);
    if (joined && (!root || joined_user_namespace() == nullptr)) {
        throw UsageError("UserNamespace::joined needs enter_user_namespace() first");
    }
    if (!userns && !root) {
        throw UsageError("running without a user namespace needs root");
    }
    const bool rootless = userns && !root;
    // Ids limited by a map of the caller's: a user namespace of ours, or the
    // one the caller joined.
    const bool mapped = rootless || joined;

    ExecUser user = with_context("user \"" + spec.user + "\"",
                                 [&] { return resolve_user(rootfd.get(), spec.user); });
    RootlessIdMap idmap;
    if (mapped) {
        idmap = joined ? *joined_user_namespace() : rootless_id_map();
        bool groups_mapped = std::all_of(user.groups.begin(), user.groups.end(),
                                         [&](gid_t g) { return g < idmap.gid_count(); });
        if (user.uid >= idmap.uid_count() || user.gid >= idmap.gid_count() ||
            (idmap.full() && !groups_mapped)) {
            throw UsageError(
                "user \"" + spec.user + "\" (uid " + std::to_string(user.uid) + ", gid " +
                std::to_string(user.gid) + "): without root only uids 0-" +
                std::to_string(idmap.uid_count() - 1) + " and gids 0-" +
                std::to_string(idmap.gid_count() - 1) + " are mapped in the container" +
                (idmap.full() ? std::string(" (from /etc/subuid and /etc/subgid)")
                              : std::string(" (grant the user ranges in /etc/subuid and "
                                            "/etc/subgid and install newuidmap/newgidmap "
                                            "to map more)")));
        }
    }
    for (const auto& l : spec.rlimits) {
        if (l.soft > l.hard) {
            throw UsageError(std::string(rlimit_name(l.resource)) + ": soft limit " +
                             limit_text(l.soft) + " is above the hard limit " + limit_text(l.hard));
        }
    }
    std::string hostname = spec.hostname.empty() ? random_hostname() : spec.hostname;
    if (hostname.size() > 64) {
        throw UsageError("hostname \"" + hostname + "\" is longer than 64 characters");
    }

    auto state = std::make_unique<State>();
    state->tty = spec.tty;

    Plan plan;
    plan.rootfs = plan.keep(rootfs);
    plan.hostname = plan.keep(hostname);
    plan.workdir = plan.keep(clean_path(spec.cwd));
    plan.rlimits = spec.rlimits;
    plan.network_none = spec.network == Network::none;
    plan.read_only = spec.read_only;
    plan.init = spec.init;
    plan.tty = spec.tty;
    plan.rootless = rootless;
    plan.setgroups_denied = mapped && !idmap.full();
    plan.new_mount_api = new_mount_api();
    plan.uid = user.uid;
    plan.gid = user.gid;
    plan.groups = user.groups;
    plan.caps = container_capabilities(spec.security);
    plan.cap_last = sys::cap_last_cap();
    const std::string seccomp_name = plan_seccomp(plan, spec);

    std::vector<std::string> env = detail::container_env(spec, user, hostname);
    for (const auto& e : env) {
        plan.envp.push_back(plan.keep(e));
    }
    plan.envp.push_back(nullptr);
    for (const auto& a : spec.argv) {
        plan.argv.push_back(plan.keep(a));
    }
    plan.argv.push_back(nullptr);
    UniqueFd init_fd;
    if (spec.init) {
        init_fd = sealed_docker_init();
        plan.init_fd = init_fd.get();
        plan.init_argv = {k_docker_init_name, "--"};
        plan.init_argv.insert(plan.init_argv.end(), plan.argv.begin(), plan.argv.end());
    }
    std::vector<std::string> candidates = detail::exec_candidates(spec.argv[0], env);
    for (const auto& c : candidates) {
        plan.candidates.push_back(plan.keep(c));
    }

    // -- Streams.
    UniqueFd devnull;
    UniqueFd console_parent;
    UniqueFd console_child;
    if (spec.tty) {
        // The pty is allocated inside the container (its own devpts) and
        // its master comes back over this socket.
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
            throw_errno("socketpair", "container console");
        }
        console_parent = UniqueFd(sv[0]);
        console_child = UniqueFd(sv[1]);
        plan.console_fd = console_child.get();
        plan.close_in_child[3] = console_parent.get();
        state->tty_in = spec.stdin_fd;
        state->tty_out = spec.stdout_fd >= 0 ? spec.stdout_fd : 1;
        state->winsize_fd = ::isatty(state->tty_out)                          ? state->tty_out
                            : (spec.stdin_fd >= 0 && ::isatty(spec.stdin_fd)) ? spec.stdin_fd
                                                                              : -1;
    } else {
        if (spec.stdin_fd < 0) {
            devnull = UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
            if (!devnull) {
                throw_errno("open", "/dev/null");
            }
            plan.stdio[0] = devnull.get();
        } else {
            plan.stdio[0] = spec.stdin_fd;
        }
        plan.stdio[1] = spec.stdout_fd;
        plan.stdio[2] = spec.stderr_fd;
    }

    std::vector<std::string> op_names;
    std::vector<HostDevice> devices = container_devices(spec.security);
    // In a user namespace the kernel refuses mknod of devices: bind them.
    plan.device_bind = userns || joined;
    // devpts's gid=5 (tty) needs gid 5 mapped.
    plan_mounts(plan, spec, mapped && idmap.gid_count() <= 5, hostname, devices, op_names);
    // The device cgroup: only real root has one, and needs one. So do limits.
    if (root && !joined && initial_user_namespace()) {
        state->cgroup = container_cgroup(spec, devices);
        auto fds = state->cgroup.procs_fds();
        for (std::size_t i = 0; i < fds.size() && i < std::size(plan.cgroup_fds); ++i) {
            plan.cgroup_fds[i] = fds[i];
        }
        plan.unshare_cgroupns = true;
    } else if (spec.resources.any()) {
        throw StartError("container setup: resource limits (--memory, --cpus, --pids-limit...) "
                         "need real root: without it strata makes no cgroup for the container",
                         125);
    }

    // -- Mount points in the root directory itself are created here (and
    // removed after the run); those inside the container's own mounts (e.g.
    // /dev/null in its /dev tmpfs) by the child.
    state->rootfd = std::move(rootfd);
    auto cleanup = ScopeFail([&] { state->remove_created(); });
    std::vector<std::string> mounted;
    for (const Op& op : plan.ops) {
        if (op.kind != OpKind::fs && op.kind != OpKind::bind && op.kind != OpKind::gen_file) {
            continue;
        }
        std::string target = op.target;
        bool covered = false;
        for (const auto& m : mounted) {
            if (target.size() > m.size() && target.compare(0, m.size(), m) == 0 &&
                target[m.size()] == '/') {
                covered = true;
            }
        }
        if (!covered) {
            with_context("in " + rootfs, [&] {
                precreate(state->rootfd.get(), target, op.target_dir, state->created, state->made);
            });
        }
        mounted.push_back(target);
    }

    // -- Pipes: the go-ahead (parent -> child), failures (child -> parent).
    Pipe sync = Pipe::create();
    Pipe report = Pipe::create();
    plan.sync_fd = sync.read.get();
    plan.wait_parent = userns;
    plan.report_fd = report.write.get();
    plan.close_in_child[0] = sync.write.get();
    plan.close_in_child[1] = report.read.get();

    std::uint64_t flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_PIDFD;
    if (!plan.unshare_cgroupns) {
        flags |= CLONE_NEWCGROUP; // else the child unshares it once in its cgroup
    }
    if (spec.network == Network::none) {
        flags |= CLONE_NEWNET;
    }
    if (userns) {
        flags |= CLONE_NEWUSER;
    }

    // -- A network namespace to join (a bridge sandbox): this thread enters
    // it for the clone, so the child is born in it, then comes back.
    UniqueFd netns_back;
    if (spec.network == Network::join && spec.netns_fd < 0) {
        throw StartError("container setup: no network namespace to join", 125);
    }
    if (spec.network == Network::join && spec.user_namespace == UserNamespace::joined) {
        // Rootless: this thread could not come back to the host's namespace
        // (another user namespace owns it), so the child enters it instead.
        plan.join_netns_fd = spec.netns_fd;
    } else if (spec.network == Network::join) {
        netns_back = UniqueFd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
        if (!netns_back) {
            throw StartError(std::string("container setup: open /proc/thread-self/ns/net: ") +
                                 std::strerror(errno),
                             125);
        }
        if (::setns(spec.netns_fd, CLONE_NEWNET) != 0) {
            throw StartError(std::string("container setup: joining the container's network "
                                         "namespace: ") +
                                 std::strerror(errno),
                             125);
        }
    }

    // -- Clone with every signal blocked, so that none of the caller's
    // handlers runs in the child before it resets them.
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    int pidfd = -1;
    pid_t pid;
    if (!userns) {
        // Nothing for this process to do until the command (or docker-init)
        // has exec'd (no id maps to write): a vfork-style clone
        // spares copying strata's page tables and the child's copy-on-write
        // faults.
        pid = sys::clone_vfork(
            flags, [](void* p) -> int { detail::child_main(*static_cast<const Plan*>(p)); }, &plan,
            &pidfd);
    } else {
        pid = sys::clone3_fork(flags, &pidfd);
        if (pid == 0) {
            detail::child_main(plan);
        }
    }
    int clone_err = pid < 0 ? -pid : 0;
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (netns_back && ::setns(netns_back.get(), CLONE_NEWNET) != 0) {
        std::terminate(); // this thread would stay in the container's network
    }
    if (pid < 0) {
        throw SysError("clone3 (new namespaces)", rootfs, clone_err);
    }
    state->pid = pid;
    state->pidfd = UniqueFd(pidfd);
    // From here on the state kills and reaps the child if anything throws.
    auto guard = ScopeFail([&] { state->kill_and_reap(); });
    sync.read.reset();
    report.write.reset();
    console_child.reset();
    devnull.reset();
    init_fd.reset();

    // -- Id maps (the child waits for them).
    if (userns) {
        if (rootless) {
            write_id_maps(pid, idmap);
        } else {
            write_proc_file(pid, "uid_map", "0 0 4294967295\n");
            write_proc_file(pid, "gid_map", "0 0 4294967295\n");
        }
    }
    // Without a user namespace there is nothing to wait for: the child only
    // checks that strata is still there, and the pipe stays open until the
    // command has started (one wake-up less per container).
    if (userns) {
        char go = 1;
        if (::write(sync.write.get(), &go, 1) != 1) {
            throw_errno("write", "runner handshake pipe");
        }
        sync.write.reset();
    }

    // -- The pty's master (tty): EOF instead means the child failed, which
    // the report pipe then says.
    if (console_parent) {
        if (UniqueFd master = receive_fd(console_parent.get())) {
            state->master = std::move(master);
            copy_window_size(state->winsize_fd, state->master.get());
        }
        console_parent.reset();
    }

    // -- EOF on the report pipe: the command has exec'd. A Report: it failed.
    detail::Report r{};
    ssize_t n;
    do {
        n = ::read(report.read.get(), &r, sizeof r);
    } while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(sizeof r)) {
        state->kill_and_reap();
        auto step = static_cast<Step>(r.step);
        std::string err = std::strerror(r.err);
        if (step == Step::exec) {
            std::string cmd = spec.argv[0];
            if (r.err == ENOENT) {
                if (cmd.find('/') == std::string::npos) {
                    throw StartError("exec: \"" + cmd + "\": executable file not found in $PATH",
                                     127);
                }
                throw StartError("exec: \"" + cmd + "\": no such file or directory", 127);
            }
            std::string path = r.index >= 0 && static_cast<std::size_t>(r.index) < candidates.size()
                                   ? candidates[static_cast<std::size_t>(r.index)]
                                   : cmd;
            std::transform(err.begin(), err.begin() + 1, err.begin(), ::tolower);
            throw StartError("exec: \"" + path + "\": " + err, 126);
        }
        r.detail[sizeof r.detail - 1] = '\0';
        if (step == Step::target_symlink || step == Step::target_type ||
            step == Step::mask_verify || step == Step::device || step == Step::cgroup) {
            throw StartError(isolation_message(r, op_names, plan.ops, state->cgroup), 125);
        }
        std::string what = detail::step_text(step);
        if ((step == Step::mount_target || step == Step::mount || step == Step::remount_ro) &&
            r.index >= 0 && static_cast<std::size_t>(r.index) < op_names.size()) {
            what += " " + op_names[static_cast<std::size_t>(r.index)];
        } else if (step == Step::workdir || step == Step::chdir) {
            what += " " + spec.cwd;
        } else if (step == Step::rlimit && r.index >= 0 &&
                   static_cast<std::size_t>(r.index) < spec.rlimits.size()) {
            const auto& l = spec.rlimits[static_cast<std::size_t>(r.index)];
            struct rlimit cur {};
            ::getrlimit(static_cast<__rlimit_resource_t>(l.resource), &cur);
            what += " " + std::string(rlimit_name(l.resource)) + " " + limit_text(l.soft) + ":" +
                    limit_text(l.hard);
            if (r.err == EPERM) {
                err += " (limits can only be lowered without CAP_SYS_RESOURCE; the hard limit "
                       "here is " +
                       limit_text(cur.rlim_max) + ")";
            }
        } else if (step == Step::uid || step == Step::gid || step == Step::groups) {
            what += " for user \"" + spec.user + "\"";
        } else if (step == Step::seccomp) {
            what += " " + seccomp_name;
        }
        r.detail[sizeof r.detail - 1] = '\0';
        if (r.detail[0] != '\0') {
            err += " (" + std::string(r.detail) + ")";
        }
        throw StartError("container setup: " + what + " in " + rootfs + ": " + err, 125);
    }
    if (n != 0) {
        throw_errno("read", "runner report pipe");
    }
    STRATA_LOG_DEBUG("container {} started in {} (pid {})", hostname, rootfs, pid);
    guard.dismiss();
    return Container(state.release());
}

Container::Container(Container&& o) noexcept : m_state(std::exchange(o.m_state, nullptr)) {}

Container& Container::operator=(Container&& o) noexcept {
    if (this != &o) {
        if (m_state != nullptr) {
            m_state->kill_and_reap();
            delete m_state;
        }
        m_state = std::exchange(o.m_state, nullptr);
    }
    return *this;
}

Container::~Container() {
    if (m_state != nullptr) {
        if (!m_state->reaped) {
            STRATA_LOG_WARN("container pid {} still running at destruction; killing it",
                            m_state->pid);
        }
        m_state->kill_and_reap();
        delete m_state;
    }
}

bool Container::oom_killed() const noexcept {
    return m_state != nullptr && m_state->oom_killed;
}

const CreatedMountPoints& Container::created_mount_points() const {
    if (m_state == nullptr) {
        throw Error("container is not running");
    }
    return m_state->made;
}

pid_t Container::pid() const noexcept {
    return m_state != nullptr ? m_state->pid : -1;
}

void Container::kill(int sig) {
    if (m_state == nullptr || m_state->reaped) {
        throw Error("container is not running");
    }
    int r = sys::pidfd_send_signal(m_state->pidfd.get(), sig);
    if (r < 0 && r != -ESRCH) {
        throw SysError("pidfd_send_signal", "container " + std::to_string(m_state->pid), -r);
    }
}

void Container::resize(unsigned short rows, unsigned short cols) {
    if (m_state == nullptr || !m_state->master) {
        throw Error("container has no terminal");
    }
    struct winsize ws {
        rows, cols, 0, 0
    };
    if (::ioctl(m_state->master.get(), TIOCSWINSZ, &ws) != 0) {
        throw_errno("TIOCSWINSZ", "container pty");
    }
}

ExitStatus Container::wait(Control* control) {
    if (m_state == nullptr || m_state->reaped) {
        throw Error("container is not running");
    }
    State& s = *m_state;
    bool in_open = s.tty && s.tty_in >= 0;
    bool out_open = s.tty;
    bool cancelled = false;
    while (true) {
        struct pollfd fds[4];
        int n = 0;
        fds[n++] = {s.pidfd.get(), POLLIN, 0};
        int control_i = -1, master_i = -1, in_i = -1;
        if (control != nullptr) {
            control_i = n;
            fds[n++] = {control->fd(), POLLIN, 0};
        }
        if (out_open) {
            master_i = n;
            fds[n++] = {s.master.get(), POLLIN, 0};
        }
        if (in_open) {
            in_i = n;
            fds[n++] = {s.tty_in, POLLIN, 0};
        }
        int r = ::poll(fds, static_cast<nfds_t>(n), -1);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw_errno("poll", "container " + std::to_string(s.pid));
        }
        if (control_i >= 0 && (fds[control_i].revents & POLLIN) != 0) {
            unsigned char events[64];
            ssize_t got = ::read(control->fd(), events, sizeof events);
            for (ssize_t i = 0; i < got; ++i) {
                if (events[i] == k_event_cancel) {
                    cancelled = true;
                    s.signal(SIGKILL);
                } else if (events[i] == k_event_winch) {
                    if (s.master) {
                        copy_window_size(s.winsize_fd, s.master.get());
                    }
                } else {
                    s.signal(events[i] - k_event_signal_base);
                }
            }
        }
        if (master_i >= 0 && (fds[master_i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            if (!pump(s.master.get(), s.tty_out)) {
                out_open = false;
            }
        }
        if (in_i >= 0 && (fds[in_i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            if (!pump(s.tty_in, s.master.get())) {
                in_open = false;
            }
        }
        if ((fds[0].revents & POLLIN) != 0) {
            break;
        }
    }
    ExitStatus status = s.reap();
    if (out_open) {
        // What the command wrote just before it ended.
        int flags = ::fcntl(s.master.get(), F_GETFL);
        ::fcntl(s.master.get(), F_SETFL, flags | O_NONBLOCK);
        char buf[16384];
        ssize_t got;
        while ((got = ::read(s.master.get(), buf, sizeof buf)) > 0) {
            std::size_t done = 0;
            while (done < static_cast<std::size_t>(got)) {
                ssize_t w = ::write(s.tty_out, buf + done, static_cast<std::size_t>(got) - done);
                if (w <= 0) {
                    break;
                }
                done += static_cast<std::size_t>(w);
            }
        }
    }
    if (cancelled) {
        throw Cancelled("container " + std::to_string(s.pid) + " was cancelled");
    }
    return status;
}

ExitStatus run(const RunSpec& spec, Control* control, CreatedMountPoints* created) {
    Container c = Container::start(spec);
    ExitStatus status = c.wait(control);
    if (created != nullptr) {
        *created = c.created_mount_points();
    }
    return status;
}

} // namespace strata::runner
