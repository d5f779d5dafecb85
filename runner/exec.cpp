// runner::exec: a new process in a running container (runner/exec.hpp).
//
// The parent prepares everything (namespace and cgroup fds, the user, the
// limits, the seccomp program, env and exec candidates) in a Plan, then
// forks a first child that joins the cgroups and namespaces and forks the
// process that becomes the command (through become_command, the end of the
// runner's own child). Like the runner's child, both only read prepared
// memory and make system calls, and report failures on a CLOEXEC pipe.
#include "runner/exec.hpp"

#include "runner/plan.hpp"
#include "runner/user.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/root.hpp"
#include "util/scope.hpp"
#include "util/sys/process.hpp"
#include "util/sys/syscalls.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <sstream>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

namespace strata::runner {

namespace {

using detail::Plan;
using detail::Step;

// The namespaces, in the order they are joined: the user namespace first
// (it owns the others, and joining it gives the capabilities the other
// setns calls need), the mount namespace last (it changes the root).
struct NsKind {
    const char* name;
    int type;
};
constexpr NsKind k_namespaces[] = {
    {"user", CLONE_NEWUSER}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
    {"net", CLONE_NEWNET},   {"pid", CLONE_NEWPID}, {"cgroup", CLONE_NEWCGROUP},
    {"mnt", CLONE_NEWNS},
};
constexpr int k_ns_count = static_cast<int>(std::size(k_namespaces));

struct ExecPlan {
    Plan plan;
    int ns_fds[k_ns_count] = {-1, -1, -1, -1, -1, -1, -1};
    std::vector<int> cgroup_fds; // cgroup.procs of each of PID 1's cgroups
    std::vector<Rlimit> rlimits; // PID 1's, every resource
    bool detach = false;
    int pid_fd = -1; // write: the command's host pid (attached)
};

// clone3 with CLONE_PARENT: the child is the caller's sibling (the kernel
// refuses an exit signal with CLONE_PARENT; the parent's is used).
pid_t clone_sibling() noexcept {
    struct clone_args args;
    std::memset(&args, 0, sizeof args);
    args.flags = CLONE_PARENT;
    long r = ::syscall(SYS_clone3, &args, sizeof args);
    return r < 0 ? -errno : static_cast<pid_t>(r);
}

// The process that becomes the command: in the container's namespaces,
// a member of its PID namespace.
[[noreturn]] void command_main(const ExecPlan& ep) noexcept {
    const Plan& plan = ep.plan;
    // PID 1's limits. One that cannot be raised to PID 1's (the caller's own
    // hard limit is lower and it lacks CAP_SYS_RESOURCE) stays lower: that
    // confines more, never less. One that cannot be lowered stops the exec.
    for (std::size_t i = 0; i < ep.rlimits.size(); ++i) {
        const Rlimit& l = ep.rlimits[i];
        auto res = static_cast<__rlimit_resource_t>(l.resource);
        struct rlimit want {
            l.soft, l.hard
        };
        if (::setrlimit(res, &want) == 0) {
            continue;
        }
        struct rlimit cur {};
        if (errno != EPERM || ::getrlimit(res, &cur) != 0) {
            detail::child_fail(plan, Step::rlimit, errno, static_cast<int>(i));
        }
        want.rlim_max = std::min(want.rlim_max, cur.rlim_max);
        want.rlim_cur = std::min(want.rlim_cur, want.rlim_max);
        if (::setrlimit(res, &want) != 0) {
            detail::child_fail(plan, Step::rlimit, errno, static_cast<int>(i));
        }
    }
    // A pty from the container's own devpts instance (as `runc exec -t`):
    // /dev/pts/ptmx resolved in the container's root, no symlink followed,
    // and it must be on a devpts.
    int slave = -1;
    if (plan.tty) {
        int root = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root < 0) {
            detail::child_fail(plan, Step::console, errno);
        }
        int master =
            sys::openat2_direct(root, "dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC, 0,
                                RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
        if (master < 0) {
            detail::child_fail(plan, Step::console, -master);
        }
        ::close(root);
        struct statfs sfs;
        if (::fstatfs(master, &sfs) != 0) {
            detail::child_fail(plan, Step::console, errno);
        }
        if (sfs.f_type != DEVPTS_SUPER_MAGIC) {
            detail::child_fail(plan, Step::console, EXDEV);
        }
        int unlock = 0;
        if (::ioctl(master, TIOCSPTLCK, &unlock) != 0) {
            detail::child_fail(plan, Step::console, errno);
        }
        slave = ::ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0) {
            detail::child_fail(plan, Step::console, errno);
        }
        if (!send_fd(plan.console_fd, master)) {
            detail::child_fail(plan, Step::console, errno);
        }
        ::close(master);
        ::close(plan.console_fd);
    }
    detail::become_command(plan, slave);
}

// The first child: joins the cgroups and the namespaces, then forks the
// command's process (attached: as strata's own child; detached: twice, so
// that the container's PID 1 adopts it).
[[noreturn]] void join_main(const ExecPlan& ep) noexcept {
    const Plan& plan = ep.plan;
    detail::child_begin();
    struct sigaction dfl;
    std::memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            ::sigaction(sig, &dfl, nullptr);
        }
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // Not dumpable until the command execs: a process of the container may
    // not ptrace this one or open its /proc/PID/fd while it holds strata's
    // fds (runc's CVE-2016-9962). Every fd of strata's closes at exec.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    for (int fd : plan.close_in_child) {
        if (fd >= 0) {
            ::close(fd);
        }
    }
    if (sys::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        detail::child_fail(plan, Step::close_fds, errno);
    }
    // The cgroups first, while this process is still strata's own (the
    // cgroup namespace and user namespace come after).
    for (std::size_t i = 0; i < ep.cgroup_fds.size(); ++i) {
        if (::write(ep.cgroup_fds[i], "0", 1) != 1) {
            detail::child_fail(plan, Step::cgroup, errno, static_cast<int>(i));
        }
        ::close(ep.cgroup_fds[i]);
    }
    for (int i = 0; i < k_ns_count; ++i) {
        if (ep.ns_fds[i] < 0) {
            continue;
        }
        if (::setns(ep.ns_fds[i], k_namespaces[i].type) != 0) {
            detail::child_fail(plan, Step::join_namespace, errno, i);
        }
        ::close(ep.ns_fds[i]);
    }
    // Now in the container's mount namespace, at its root (setns sets the
    // root and working directory to the namespace's root).
    if (ep.detach) {
        pid_t g = sys::clone3_fork(0, nullptr);
        if (g < 0) {
            detail::child_fail(plan, Step::fork_exec, -g);
        }
        if (g == 0) {
            pid_t f = sys::clone3_fork(0, nullptr);
            if (f < 0) {
                detail::child_fail(plan, Step::fork_exec, -f);
            }
            if (f == 0) {
                // Run once adopted by the container's PID 1 (its parent
                // here exits at once), so that the command never sees
                // another parent; bounded, in case PID 1 is slow to die.
                for (int i = 0; i < 2000 && ::getppid() != 1; ++i) {
                    struct timespec ms {
                        0, 1000000
                    };
                    ::nanosleep(&ms, nullptr);
                }
                command_main(ep);
            }
            _exit(0); // f is orphaned: the container's PID 1 adopts it
        }
        int status = 0;
        while (::waitpid(g, &status, 0) < 0 && errno == EINTR) {
        }
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 125);
    }
    pid_t f = clone_sibling();
    if (f < 0) {
        detail::child_fail(plan, Step::fork_exec, -f);
    }
    if (f == 0) {
        command_main(ep);
    }
    ssize_t ignored = ::write(ep.pid_fd, &f, sizeof f);
    (void)ignored;
    _exit(0);
}

// PID 1's cgroups (from /proc/PID/cgroup, as the host sees them) that
// differ from strata's own, as open cgroup.procs files.
std::vector<UniqueFd> cgroup_procs(pid_t pid) {
    auto parse = [](const std::string& text) {
        std::vector<std::pair<std::string, std::string>> out; // (controllers, path)
        std::istringstream in(text);
        std::string line;
        while (std::getline(in, line)) {
            auto a = line.find(':');
            auto b = a == std::string::npos ? a : line.find(':', a + 1);
            if (b == std::string::npos) {
                continue;
            }
            out.emplace_back(line.substr(a + 1, b - a - 1), line.substr(b + 1));
        }
        return out;
    };
    const std::string file = "/proc/" + std::to_string(pid) + "/cgroup";
    auto theirs = parse(fs::read_file(file));
    auto ours = parse(fs::read_file("/proc/self/cgroup"));
    // Mount points of the cgroup hierarchies: (controllers or "" for v2, dir).
    std::vector<std::pair<std::vector<std::string>, std::string>> mounts;
    {
        std::istringstream in(fs::read_file("/proc/self/mountinfo"));
        std::string line;
        while (std::getline(in, line)) {
            std::istringstream f(line);
            std::string id, parent, dev, root, mp, opts, tok;
            f >> id >> parent >> dev >> root >> mp >> opts;
            while (f >> tok && tok != "-") {
            }
            std::string fstype, source, super;
            f >> fstype >> source >> super;
            if (root != "/" || (fstype != "cgroup" && fstype != "cgroup2")) {
                continue;
            }
            std::vector<std::string> ctl;
            if (fstype == "cgroup") {
                std::istringstream so(super);
                std::string o;
                while (std::getline(so, o, ',')) {
                    ctl.push_back(o);
                }
            }
            mounts.emplace_back(std::move(ctl), mp);
        }
    }
    std::vector<UniqueFd> out;
    for (const auto& [controllers, path] : theirs) {
        bool same = std::find(ours.begin(), ours.end(), std::pair(controllers, path)) != ours.end();
        if (same) {
            continue;
        }
        std::vector<std::string> want;
        std::istringstream cs(controllers);
        std::string c;
        while (std::getline(cs, c, ',')) {
            want.push_back(c);
        }
        std::string dir;
        for (const auto& [ctl, mp] : mounts) {
            bool v2 = ctl.empty();
            if (v2 != want.empty()) {
                continue;
            }
            if (std::all_of(want.begin(), want.end(), [&](const std::string& w) {
                    return std::find(ctl.begin(), ctl.end(), w) != ctl.end();
                })) {
                dir = mp;
                break;
            }
        }
        if (dir.empty()) {
            throw Error("joining the container's cgroup " + controllers + ":" + path +
                        ": no mount of that hierarchy in /proc/self/mountinfo");
        }
        std::string procs = dir + path + "/cgroup.procs";
        UniqueFd fd(::open(procs.c_str(), O_WRONLY | O_CLOEXEC));
        if (!fd) {
            throw_errno("joining the container's cgroup", procs);
        }
        out.push_back(std::move(fd));
    }
    return out;
}

// Is this process root in the initial user namespace (the full identity
// map, as the runner judges it: only then do containers get a cgroup)?
bool host_root() {
    if (::geteuid() != 0) {
        return false;
    }
    std::string map = fs::read_file("/proc/self/uid_map");
    unsigned long inside = 1, outside = 1, count = 0;
    return std::sscanf(map.c_str(), "%lu %lu %lu", &inside, &outside, &count) == 3 && inside == 0 &&
           outside == 0 && count == 4294967295UL && map.find('\n') == map.size() - 1;
}

std::string read_in_root(int rootfd, const char* path) {
    int fd = sys::openat2_direct(rootfd, path, O_RDONLY | O_CLOEXEC, 0,
                                 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    if (fd < 0) {
        return {};
    }
    UniqueFd owned(fd);
    return fs::read_fd(fd, 4096);
}

std::string exec_message(const detail::Report& r, const ExecSpec& spec,
                         const std::vector<std::string>& candidates, int& code) {
    auto step = static_cast<Step>(r.step);
    std::string err = std::strerror(r.err);
    code = 126;
    if (step == Step::exec) {
        const std::string& cmd = spec.argv[0];
        if (r.err == ENOENT) {
            code = 127;
            if (cmd.find('/') == std::string::npos) {
                return "exec: \"" + cmd + "\": executable file not found in $PATH";
            }
            return "exec: \"" + cmd + "\": no such file or directory";
        }
        std::string path = r.index >= 0 && static_cast<std::size_t>(r.index) < candidates.size()
                               ? candidates[static_cast<std::size_t>(r.index)]
                               : cmd;
        std::transform(err.begin(), err.begin() + 1, err.begin(), ::tolower);
        return "exec: \"" + path + "\": " + err;
    }
    std::string what = detail::step_text(step);
    if (step == Step::join_namespace && r.index >= 0 && r.index < k_ns_count) {
        what = std::string("joining the container's ") + k_namespaces[r.index].name + " namespace";
    } else if (step == Step::chdir) {
        what += " " + (spec.cwd.empty() ? std::string("/") : spec.cwd);
    } else if (step == Step::uid || step == Step::gid || step == Step::groups) {
        what += " for user \"" + spec.user + "\"";
    } else if (step == Step::console && r.err == EXDEV) {
        err = "the container's /dev/pts/ptmx is not on a devpts filesystem";
    }
    return "exec in container " + std::to_string(spec.pid) + ": " + what + ": " + err;
}

} // namespace

Exec Exec::start(const ExecSpec& spec) {
    if (spec.argv.empty() || spec.argv[0].empty()) {
        throw UsageError("no command given");
    }
    if (spec.pid <= 0) {
        throw UsageError("exec: no container process given");
    }
    const std::string proc = "/proc/" + std::to_string(spec.pid);
    // Pin PID 1: everything read below through /proc/PID is checked to
    // still belong to it once it has been opened.
    UniqueFd target(static_cast<int>(::syscall(SYS_pidfd_open, spec.pid, 0)));
    if (!target) {
        if (errno == ESRCH) {
            throw Error("container process " + std::to_string(spec.pid) + " is not running");
        }
        throw_errno("pidfd_open", proc);
    }

    ExecPlan ep;
    Plan& plan = ep.plan;
    std::vector<UniqueFd> ns_fds;
    for (int i = 0; i < k_ns_count; ++i) {
        std::string theirs = proc + "/ns/" + k_namespaces[i].name;
        std::string ours = std::string("/proc/self/ns/") + k_namespaces[i].name;
        UniqueFd fd(::open(theirs.c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd) {
            throw_errno("open", theirs);
        }
        struct stat a = fs::fstat(fd.get());
        struct stat b {};
        if (::stat(ours.c_str(), &b) != 0) {
            throw_errno("stat", ours);
        }
        if (a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
            continue; // shared with strata (e.g. --network host): nothing to join
        }
        ep.ns_fds[i] = fd.get();
        ns_fds.push_back(std::move(fd));
    }
    if (ep.ns_fds[6] < 0 || ep.ns_fds[4] < 0) {
        throw Error("process " + std::to_string(spec.pid) +
                    " shares strata's mount or PID namespace: not a container");
    }
    // The cgroups: only real root's containers have their own (runner::Cgroup).
    std::vector<UniqueFd> cgroups;
    if (host_root()) {
        cgroups = cgroup_procs(spec.pid);
    }
    for (const auto& fd : cgroups) {
        ep.cgroup_fds.push_back(fd.get());
    }
    for (int r = 0; r < RLIM_NLIMITS; ++r) {
        struct rlimit l {};
        if (::prlimit(spec.pid, static_cast<__rlimit_resource>(r), nullptr, &l) != 0) {
            throw_errno("prlimit (reading the container's limits)", proc);
        }
        ep.rlimits.push_back(Rlimit{r, l.rlim_cur, l.rlim_max});
    }
    UniqueFd rootfd(::open((proc + "/root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!rootfd) {
        throw_errno("open", proc + "/root");
    }
    ExecUser user = with_context("user \"" + spec.user + "\"",
                                 [&] { return resolve_user(rootfd.get(), spec.user); });
    std::string setgroups = read_in_root(AT_FDCWD, (proc + "/setgroups").c_str());
    plan.setgroups_denied = setgroups.rfind("deny", 0) == 0;
    std::string hostname = spec.hostname;
    if (hostname.empty()) {
        hostname = read_in_root(rootfd.get(), "etc/hostname");
        while (!hostname.empty() && (hostname.back() == '\n' || hostname.back() == ' ')) {
            hostname.pop_back();
        }
    }
    if (sys::pidfd_send_signal(target.get(), 0) != 0) {
        throw Error("container process " + std::to_string(spec.pid) + " is not running");
    }

    // Confinement: the container's capabilities and its seccomp filter
    // (compiled for the container's capabilities even with privileged).
    plan.caps = container_capabilities(spec.security);
    std::string seccomp_name;
    try {
        seccomp_name = detail::plan_security_seccomp(plan, spec.security);
    } catch (const StartError& e) {
        throw StartError(e.what(), 126);
    }
    if (spec.privileged) {
        Security all;
        all.privileged = true;
        plan.caps = container_capabilities(all);
    }
    plan.cap_last = sys::cap_last_cap();
    plan.uid = user.uid;
    plan.gid = user.gid;
    plan.groups = user.groups;
    plan.tty = spec.tty && !spec.detach;
    plan.workdir = plan.keep(spec.cwd.empty() ? std::string("/") : clean_path(spec.cwd));
    if (plan.workdir[0] != '/') {
        throw UsageError("working directory \"" + spec.cwd + "\" is not an absolute path");
    }
    RunSpec envspec;
    envspec.env = spec.env;
    envspec.tty = plan.tty;
    std::vector<std::string> env = detail::container_env(envspec, user, hostname);
    if (hostname.empty()) {
        std::erase(env, std::string("HOSTNAME="));
    }
    for (const auto& e : env) {
        plan.envp.push_back(plan.keep(e));
    }
    plan.envp.push_back(nullptr);
    for (const auto& a : spec.argv) {
        plan.argv.push_back(plan.keep(a));
    }
    plan.argv.push_back(nullptr);
    std::vector<std::string> candidates = detail::exec_candidates(spec.argv[0], env);
    for (const auto& c : candidates) {
        plan.candidates.push_back(plan.keep(c));
    }
    ep.detach = spec.detach;

    // Streams.
    Exec ex;
    UniqueFd devnull;
    UniqueFd console_parent, console_child;
    if (plan.tty) {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
            throw_errno("socketpair", "exec console");
        }
        console_parent = UniqueFd(sv[0]);
        console_child = UniqueFd(sv[1]);
        plan.console_fd = console_child.get();
        plan.close_in_child[3] = console_parent.get();
        ex.m_tty_in = spec.stdin_fd;
        ex.m_tty_out = spec.stdout_fd >= 0 ? spec.stdout_fd : 1;
        ex.m_winsize_fd = ::isatty(ex.m_tty_out)                            ? ex.m_tty_out
                          : (spec.stdin_fd >= 0 && ::isatty(spec.stdin_fd)) ? spec.stdin_fd
                                                                            : -1;
    } else {
        if (spec.stdin_fd < 0 || spec.detach) {
            devnull = UniqueFd(::open("/dev/null", O_RDWR | O_CLOEXEC));
            if (!devnull) {
                throw_errno("open", "/dev/null");
            }
        }
        plan.stdio[0] = spec.stdin_fd < 0 || spec.detach ? devnull.get() : spec.stdin_fd;
        plan.stdio[1] = spec.detach ? devnull.get() : spec.stdout_fd;
        plan.stdio[2] = spec.detach ? devnull.get() : spec.stderr_fd;
    }

    Pipe report = Pipe::create();
    Pipe pids = Pipe::create();
    plan.report_fd = report.write.get();
    plan.close_in_child[0] = report.read.get();
    plan.close_in_child[1] = pids.read.get();
    ep.pid_fd = pids.write.get();

    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t first = sys::clone3_fork(0, nullptr);
    if (first == 0) {
        join_main(ep);
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (first < 0) {
        throw SysError("fork (exec)", proc, -first);
    }
    auto reap_first = [first] {
        int status;
        while (::waitpid(first, &status, 0) < 0 && errno == EINTR) {
        }
    };
    auto reap_guard = ScopeExit(reap_first);
    report.write.reset();
    pids.write.reset();
    console_child.reset();
    devnull.reset();
    ns_fds.clear();
    cgroups.clear();

    if (!spec.detach) {
        pid_t f = -1;
        ssize_t n;
        do {
            n = ::read(pids.read.get(), &f, sizeof f);
        } while (n < 0 && errno == EINTR);
        if (n == static_cast<ssize_t>(sizeof f) && f > 0) {
            ex.m_pid = f;
            ex.m_reaped = false;
            int pfd = static_cast<int>(::syscall(SYS_pidfd_open, f, 0));
            if (pfd < 0) {
                int e = errno;
                ex.kill_and_reap();
                throw SysError("pidfd_open", "exec'd process " + std::to_string(f), e);
            }
            ex.m_pidfd = UniqueFd(pfd);
        }
    }
    if (console_parent) {
        if (UniqueFd master = receive_fd(console_parent.get())) {
            ex.m_master = std::move(master);
            detail::copy_winsize(ex.m_winsize_fd, ex.m_master.get());
        }
        console_parent.reset();
    }
    detail::Report r{};
    ssize_t n;
    do {
        n = ::read(report.read.get(), &r, sizeof r);
    } while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(sizeof r)) {
        ex.kill_and_reap();
        int code = 126;
        std::string msg = exec_message(r, spec, candidates, code);
        if (static_cast<Step>(r.step) == Step::seccomp) {
            msg += " (" + seccomp_name + ")";
        }
        throw StartError(msg, code);
    }
    if (n != 0) {
        throw_errno("read", "exec report pipe");
    }
    if (!spec.detach && ex.m_pid < 0) {
        throw Error("exec in container " + std::to_string(spec.pid) +
                    ": the process was not started");
    }
    return ex;
}

Exec::Exec(Exec&& o) noexcept
    : m_pid(std::exchange(o.m_pid, -1)), m_pidfd(std::move(o.m_pidfd)),
      m_master(std::move(o.m_master)), m_tty_in(o.m_tty_in), m_tty_out(o.m_tty_out),
      m_winsize_fd(o.m_winsize_fd), m_reaped(std::exchange(o.m_reaped, true)) {}

Exec& Exec::operator=(Exec&& o) noexcept {
    if (this != &o) {
        kill_and_reap();
        m_pid = std::exchange(o.m_pid, -1);
        m_pidfd = std::move(o.m_pidfd);
        m_master = std::move(o.m_master);
        m_tty_in = o.m_tty_in;
        m_tty_out = o.m_tty_out;
        m_winsize_fd = o.m_winsize_fd;
        m_reaped = std::exchange(o.m_reaped, true);
    }
    return *this;
}

Exec::~Exec() {
    kill_and_reap();
}

void Exec::kill_and_reap() noexcept {
    if (!m_reaped && m_pid > 0) {
        if (m_pidfd) {
            sys::pidfd_send_signal(m_pidfd.get(), SIGKILL);
        }
        int status;
        while (::waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
    m_reaped = true;
}

void Exec::kill(int sig) {
    if (m_reaped || !m_pidfd) {
        throw Error("the exec'd process is not running");
    }
    int r = sys::pidfd_send_signal(m_pidfd.get(), sig);
    if (r < 0 && r != -ESRCH) {
        throw SysError("pidfd_send_signal", "exec'd process " + std::to_string(m_pid), -r);
    }
}

void Exec::resize(unsigned short rows, unsigned short cols) {
    if (!m_master) {
        throw Error("the exec'd process has no terminal");
    }
    struct winsize ws {
        rows, cols, 0, 0
    };
    if (::ioctl(m_master.get(), TIOCSWINSZ, &ws) != 0) {
        throw_errno("TIOCSWINSZ", "exec pty");
    }
}

ExitStatus Exec::wait(Control* control) {
    if (m_reaped || m_pid < 0) {
        throw Error("the exec'd process is not running");
    }
    bool in_open = m_master && m_tty_in >= 0;
    bool out_open = static_cast<bool>(m_master);
    bool cancelled = false;
    while (true) {
        struct pollfd fds[4];
        int n = 0;
        fds[n++] = {m_pidfd.get(), POLLIN, 0};
        int control_i = -1, master_i = -1, in_i = -1;
        if (control != nullptr) {
            control_i = n;
            fds[n++] = {control->fd(), POLLIN, 0};
        }
        if (out_open) {
            master_i = n;
            fds[n++] = {m_master.get(), POLLIN, 0};
        }
        if (in_open) {
            in_i = n;
            fds[n++] = {m_tty_in, POLLIN, 0};
        }
        if (::poll(fds, static_cast<nfds_t>(n), -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw_errno("poll", "exec'd process " + std::to_string(m_pid));
        }
        if (control_i >= 0 && (fds[control_i].revents & POLLIN) != 0) {
            unsigned char events[64];
            ssize_t got = ::read(control->fd(), events, sizeof events);
            for (ssize_t i = 0; i < got; ++i) {
                if (events[i] == detail::k_event_cancel) {
                    cancelled = true;
                    sys::pidfd_send_signal(m_pidfd.get(), SIGKILL);
                } else if (events[i] == detail::k_event_winch) {
                    if (m_master) {
                        detail::copy_winsize(m_winsize_fd, m_master.get());
                    }
                } else {
                    sys::pidfd_send_signal(m_pidfd.get(), events[i] - detail::k_event_signal_base);
                }
            }
        }
        if (master_i >= 0 && (fds[master_i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            if (!detail::pump_stream(m_master.get(), m_tty_out)) {
                out_open = false;
            }
        }
        if (in_i >= 0 && (fds[in_i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            if (!detail::pump_stream(m_tty_in, m_master.get())) {
                in_open = false;
            }
        }
        if ((fds[0].revents & POLLIN) != 0) {
            break;
        }
    }
    int status = 0;
    while (::waitpid(m_pid, &status, 0) < 0) {
        if (errno != EINTR) {
            throw_errno("waitpid", "exec'd process " + std::to_string(m_pid));
        }
    }
    m_reaped = true;
    if (out_open) {
        // What the command wrote just before it ended.
        int flags = ::fcntl(m_master.get(), F_GETFL);
        ::fcntl(m_master.get(), F_SETFL, flags | O_NONBLOCK);
        char buf[16384];
        ssize_t got;
        while ((got = ::read(m_master.get(), buf, sizeof buf)) > 0) {
            std::size_t done = 0;
            while (done < static_cast<std::size_t>(got)) {
                ssize_t w = ::write(m_tty_out, buf + done, static_cast<std::size_t>(got) - done);
                if (w <= 0) {
                    break;
                }
                done += static_cast<std::size_t>(w);
            }
        }
    }
    if (cancelled) {
        throw Cancelled("exec'd process " + std::to_string(m_pid) + " was cancelled");
    }
    return ExitStatus(status);
}

std::optional<ExitStatus> Exec::wait_for(std::chrono::milliseconds timeout) {
    if (m_reaped || m_pid < 0) {
        throw Error("the exec'd process is not running");
    }
    struct pollfd p {
        m_pidfd.get(), POLLIN, 0
    };
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        int r = ::poll(&p, 1, static_cast<int>(std::max<long long>(0, left.count())));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            throw_errno("poll", "exec'd process " + std::to_string(m_pid));
        }
        if (r == 0) {
            return std::nullopt;
        }
        break;
    }
    int status = 0;
    while (::waitpid(m_pid, &status, 0) < 0) {
        if (errno != EINTR) {
            throw_errno("waitpid", "exec'd process " + std::to_string(m_pid));
        }
    }
    m_reaped = true;
    return ExitStatus(status);
}

ExitStatus exec(const ExecSpec& spec, Control* control) {
    Exec e = Exec::start(spec);
    if (spec.detach) {
        return ExitStatus(0);
    }
    return e.wait(control);
}

std::vector<pid_t> pid_namespace_members(pid_t pid) {
    const std::string ns = "/proc/" + std::to_string(pid) + "/ns/pid";
    struct stat want {};
    if (::stat(ns.c_str(), &want) != 0) {
        throw_errno("stat", ns);
    }
    std::vector<pid_t> out;
    UniqueFd dir(::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) {
        throw_errno("open", "/proc");
    }
    for (const auto& name : fs::list_dir_at(dir.get())) {
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) {
            continue;
        }
        struct stat st {};
        if (::fstatat(dir.get(), (name + "/ns/pid").c_str(), &st, 0) != 0) {
            continue; // gone meanwhile
        }
        if (st.st_ino == want.st_ino && st.st_dev == want.st_dev) {
            out.push_back(static_cast<pid_t>(std::stol(name)));
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace strata::runner
