#include "runner/idmap.hpp"

#include "runner/subid.hpp"
#include "util/child.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/log.hpp"
#include "util/sys/process.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <linux/sched.h>
#include <optional>
#include <pwd.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

namespace strata::runner {

namespace {

bool parse_u32(std::string_view s, std::uint32_t& out) {
    if (s.empty()) {
        return false;
    }
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size();
}

std::string read_small_file(const char* path) {
    std::string out;
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return out;
    }
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0 && out.size() < (1u << 22)) {
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

std::uint64_t count_of(const std::vector<IdMapLine>& lines) {
    std::uint64_t n = 0;
    for (const auto& l : lines) {
        n = std::max<std::uint64_t>(n, std::uint64_t{l.inside} + l.count);
    }
    return n;
}

std::vector<IdMapLine> lines_for(std::uint32_t own, const std::vector<IdRange>& ranges) {
    std::vector<IdMapLine> out{{0, own, 1}};
    std::uint64_t next = 1;
    for (const auto& r : ranges) {
        // The kernel takes at most 340 lines and 2^32-1 ids.
        if (out.size() >= 340 || next + r.count > 0xffffffffULL) {
            break;
        }
        out.push_back({static_cast<std::uint32_t>(next), r.start, r.count});
        next += r.count;
    }
    return out;
}

} // namespace

std::vector<IdRange> subordinate_ranges(std::string_view content, std::string_view name,
                                        std::uint32_t id) {
    std::vector<IdRange> out;
    std::string id_text = std::to_string(id);
    std::size_t i = 0;
    while (i < content.size()) {
        std::size_t j = content.find('\n', i);
        if (j == std::string_view::npos) {
            j = content.size();
        }
        std::string_view line = content.substr(i, j - i);
        i = j + 1;
        auto c1 = line.find(':');
        auto c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
        if (line.empty() || line[0] == '#' || c2 == std::string_view::npos) {
            continue;
        }
        std::string_view who = line.substr(0, c1);
        if (who != id_text && (name.empty() || who != name)) {
            continue;
        }
        IdRange r;
        if (!parse_u32(line.substr(c1 + 1, c2 - c1 - 1), r.start) ||
            !parse_u32(line.substr(c2 + 1), r.count) || r.count == 0) {
            continue;
        }
        out.push_back(r);
    }
    return out;
}

std::uint64_t RootlessIdMap::uid_count() const noexcept {
    return count_of(uid);
}

std::uint64_t RootlessIdMap::gid_count() const noexcept {
    return count_of(gid);
}

RootlessIdMap make_id_map(uid_t uid, gid_t gid, const std::vector<IdRange>& subuids,
                          const std::vector<IdRange>& subgids, const std::string& newuidmap,
                          const std::string& newgidmap) {
    RootlessIdMap m;
    if (subuids.empty() || subgids.empty() || newuidmap.empty() || newgidmap.empty()) {
        m.uid = {{0, uid, 1}};
        m.gid = {{0, gid, 1}};
        return m;
    }
    m.uid = lines_for(uid, subuids);
    m.gid = lines_for(gid, subgids);
    m.newuidmap = newuidmap;
    m.newgidmap = newgidmap;
    return m;
}

RootlessIdMap rootless_id_map() {
    uid_t uid = ::geteuid();
    gid_t gid = ::getegid();
    std::string name;
    {
        struct passwd pw;
        struct passwd* found = nullptr;
        std::vector<char> buf(16384);
        if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
            name = pw.pw_name;
        }
    }
    auto subuids = user_subordinate_ranges(SubidKind::uid, name, uid);
    auto subgids = user_subordinate_ranges(SubidKind::gid, name, uid);
    auto newuidmap = find_program("newuidmap");
    auto newgidmap = find_program("newgidmap");
    RootlessIdMap m =
        make_id_map(uid, gid, subuids, subgids, newuidmap.value_or(""), newgidmap.value_or(""));
    if (!m.full()) {
        const char* why = subuids.empty()   ? "/etc/subuid grants no range to"
                          : subgids.empty() ? "/etc/subgid grants no range to"
                          : !newuidmap      ? "newuidmap (package uidmap) is missing for"
                                            : "newgidmap (package uidmap) is missing for";
        if (!subuids.empty() && !subgids.empty()) {
            // Ranges granted but not usable: worth saying, as podman does.
            STRATA_LOG_WARN("{} user {} (uid {}), whose /etc/subuid and /etc/subgid grant ranges: "
                            "mapping only container uid/gid 0 to {}:{}",
                            why, name.empty() ? "?" : name, uid, uid, gid);
        } else {
            STRATA_LOG_DEBUG("runner: {} user {} (uid {}): mapping only container uid/gid 0 to "
                             "{}:{}; other users need root",
                             why, name.empty() ? "?" : name, uid, uid, gid);
        }
    } else {
        STRATA_LOG_DEBUG("runner: mapping container uids 0-{} and gids 0-{} through {} and {}",
                         m.uid_count() - 1, m.gid_count() - 1, m.newuidmap, m.newgidmap);
    }
    return m;
}

std::string id_map_text(const std::vector<IdMapLine>& lines) {
    std::string out;
    for (const auto& l : lines) {
        out += std::to_string(l.inside) + " " + std::to_string(l.outside) + " " +
               std::to_string(l.count) + "\n";
    }
    return out;
}

void write_proc_file(pid_t pid, const char* name, const std::string& content) {
    std::string path = "/proc/" + std::to_string(pid) + "/" + name;
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) {
        throw_errno("open", path);
    }
    if (::write(fd.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
        throw_errno("write", path);
    }
}

namespace {

// newuidmap/newgidmap PID INSIDE OUTSIDE COUNT...: the setuid helpers check
// the ranges against /etc/subuid and /etc/subgid and write the map.
void run_id_helper(const std::string& helper, pid_t pid, const std::vector<IdMapLine>& lines) {
    std::vector<std::string> argv{helper, std::to_string(pid)};
    for (const auto& l : lines) {
        argv.push_back(std::to_string(l.inside));
        argv.push_back(std::to_string(l.outside));
        argv.push_back(std::to_string(l.count));
    }
    RunResult r = run_capture(argv, true);
    if (!r.status.success()) {
        while (!r.out.empty() && (r.out.back() == '\n' || r.out.back() == ' ')) {
            r.out.pop_back();
        }
        throw Error(helper + " " + std::to_string(pid) + " " + id_map_text(lines).substr(0, 200) +
                    ": " + r.status.describe() + (r.out.empty() ? "" : ": " + r.out));
    }
}

// Why clone(CLONE_NEWUSER) failed, in the words of the setting to change.
std::string userns_hint(int err) {
    auto first_line = [](const char* path) {
        std::string s = read_small_file(path);
        return s.substr(0, s.find('\n'));
    };
    if (first_line("/proc/sys/kernel/unprivileged_userns_clone") == "0") {
        return "the sysctl kernel.unprivileged_userns_clone is 0; set it to 1";
    }
    if (first_line("/proc/sys/user/max_user_namespaces") == "0") {
        return "the sysctl user.max_user_namespaces is 0; raise it";
    }
    if (first_line("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1") {
        return "AppArmor restricts unprivileged user namespaces "
               "(kernel.apparmor_restrict_unprivileged_userns=1)";
    }
    if (err == ENOSPC) {
        return "the limit on nested or per-user user namespaces is reached "
               "(user.max_user_namespaces)";
    }
    if (err == EPERM) {
        return "this process may not create user namespaces (a seccomp filter, or a container "
               "that forbids them)";
    }
    return "the kernel needs CONFIG_USER_NS";
}

std::optional<RootlessIdMap> g_joined;

} // namespace

void write_id_maps(pid_t pid, const RootlessIdMap& m) {
    if (m.full()) {
        run_id_helper(m.newuidmap, pid, m.uid);
        run_id_helper(m.newgidmap, pid, m.gid);
    } else {
        write_proc_file(pid, "setgroups", "deny");
        write_proc_file(pid, "uid_map", id_map_text(m.uid));
        write_proc_file(pid, "gid_map", id_map_text(m.gid));
    }
}

void enter_user_namespace(const RootlessIdMap& m) {
    if (g_joined) {
        throw Error("enter_user_namespace: this process is already in a user namespace of its own");
    }
    // The child only waits for the pipe to close (this process has joined,
    // or is gone) and exits: nothing after clone but read and _exit.
    Pipe hold = Pipe::create();
    int pidfd = -1;
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = sys::clone3_fork(CLONE_NEWUSER | CLONE_PIDFD, &pidfd);
    if (pid == 0) {
        char c;
        ::close(hold.write.get());
        while (::read(hold.read.get(), &c, 1) < 0 && errno == EINTR) {
        }
        _exit(0);
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (pid < 0) {
        throw Error("running without root needs an unprivileged user namespace, and creating one "
                    "failed: clone(CLONE_NEWUSER): " +
                    std::string(std::strerror(-pid)) + " (" + userns_hint(-pid) + ")");
    }
    UniqueFd pidfd_owner(pidfd);
    hold.read.reset();
    auto reap = [&]() noexcept {
        hold.write.reset();
        int status;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    };
    try {
        write_id_maps(pid, m);
        // setns(2) into a user namespace needs a single-threaded caller.
        if (::setns(pidfd, CLONE_NEWUSER) != 0) {
            int err = errno;
            throw SysError(err == EINVAL ? "setns(CLONE_NEWUSER) (strata has threads running?)"
                                         : "setns(CLONE_NEWUSER)",
                           "/proc/" + std::to_string(pid) + "/ns/user", err);
        }
    } catch (...) {
        reap();
        throw;
    }
    reap();
    g_joined = m;
    STRATA_LOG_DEBUG("entered a user namespace: uid map {} gid map {}", id_map_text(m.uid),
                     id_map_text(m.gid));
}

const RootlessIdMap* joined_user_namespace() noexcept {
    return g_joined ? &*g_joined : nullptr;
}

} // namespace strata::runner
