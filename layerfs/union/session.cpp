// The FUSE session: mounting the union, the daemon's start-up and the
// request loops.

#include "layerfs/union/fs.hpp"

#include "util/error.hpp"
#include "util/log.hpp"
#include "util/scope.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <syslog.h>

namespace strata::layerfs {

std::vector<std::string> split_layer_list(const std::string& list) {
    std::vector<std::string> out;
    std::string cur;
    for (std::size_t i = 0; i < list.size(); ++i) {
        char c = list[i];
        if (c == '\\' && i + 1 < list.size()) {
            cur += list[++i];
        } else if (c == ':') {
            if (!cur.empty()) {
                out.push_back(cur);
            }
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) {
        out.push_back(cur);
    }
    return out;
}

namespace unionfs {
namespace {

struct SessionDeleter {
    void operator()(fuse_session* se) const { fuse_session_destroy(se); }
};

// Requests served on the main thread before the multi-threaded loop starts.
// A mount that is only stat'ed or listed once (a container runtime checking
// it, `mount` + `ls` + `umount`) never pays for worker threads (each one a
// stack, a 1 MiB request buffer and a malloc arena, created and torn down),
// and the first requests after the mount are answered without a hand-off
// between threads; a busy mount gets its workers after this many.
constexpr int k_inline_requests = 64;

// Serves requests one at a time on this thread until enough() says so.
// False when the session ended first (unmounted, a signal, a read error).
template <typename Enough> bool serve_inline(fuse_session* se, fuse_buf& buf, Enough&& enough) {
    while (!fuse_session_exited(se)) {
        if (enough()) {
            return true;
        }
        int r = fuse_session_receive_buf(se, &buf);
        if (r == -EINTR) {
            continue; // a signal: its handler may have ended the session
        }
        if (r < 0) {
            STRATA_LOG_ERROR("union fs: reading /dev/fuse: {}", std::strerror(-r));
            fuse_session_exit(se);
        }
        if (r <= 0) {
            return false; // 0: unmounted (libfuse marked the session exited)
        }
        fuse_session_process_buf(se, &buf);
    }
    return false;
}

void log_to_syslog() {
    ::openlog("strata-overlay", LOG_PID, LOG_DAEMON);
    log::set_sink([](log::Level level, std::string_view message) {
        int prio = level == log::Level::error  ? LOG_ERR
                   : level == log::Level::warn ? LOG_WARNING
                                               : LOG_DEBUG;
        ::syslog(prio, "%.*s", static_cast<int>(message.size()), message.data());
    });
}

// Forks the daemon once the mount exists. The child detaches (new session,
// cwd /, stdio on /dev/null, logs to syslog), answers the kernel's INIT and
// only then lets the parent go: the parent exits 0 once the mount serves
// requests (what mount(8), `strata mount` and scripts that use the mount
// right away expect; libfuse's fuse_daemonize lets it go before, so the
// first request waited for the new daemon to be scheduled, answer INIT and
// start its threads). Returns in the child, true when INIT was answered.
// In the parent, throws if the child ended before answering INIT.
bool daemonize_when_ready(fuse_session* se, Fs& fs, fuse_buf& buf, const std::string& target) {
    Pipe ready = Pipe::create();
    pid_t pid = ::fork();
    if (pid < 0) {
        throw_errno("fork", target);
    }
    if (pid > 0) {
        ready.write.reset();
        char c = 0;
        ssize_t n;
        do {
            n = ::read(ready.read.get(), &c, 1);
        } while (n < 0 && errno == EINTR);
        if (n == 1 && c == 1) {
            ::_exit(0);
        }
        throw Error("union filesystem on \"" + target +
                    "\": the daemon ended before the kernel's INIT was answered");
    }
    ready.read.reset();
    ::setsid();
    if (::chdir("/") != 0) {
        // "/" always exists; nothing to do but stay where we are.
    }
    if (UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC)); null) {
        ::dup2(null.get(), STDIN_FILENO);
        ::dup2(null.get(), STDOUT_FILENO);
        ::dup2(null.get(), STDERR_FILENO);
        if (null.get() <= STDERR_FILENO) {
            (void)null.release(); // it is one of stdin/out/err now
        }
    }
    log_to_syslog();
    bool ok = serve_inline(se, buf, [&] { return fs.initialized(); });
    char c = ok ? 1 : 0;
    if (::write(ready.write.get(), &c, 1) != 1) {
        // The parent died: the mount is served all the same.
    }
    return ok;
}

} // namespace
} // namespace unionfs

int serve_union(const UnionOptions& opts, const std::string& target, bool daemonize) {
    using namespace unionfs;
    Fs fs(opts);
    bool allow_other = opts.allow_other.value_or(::geteuid() == 0);
    // Options for the kernel mount. The union decides permissions the way the
    // layers' modes say (default_permissions), as overlayfs does.
    std::string fsname;
    for (char c : opts.fsname) {
        if (c == ',' || c == '\\') {
            fsname += '\\'; // libfuse's option parser honours backslash escapes
        }
        fsname += c;
    }
    std::string mount_opts = "fsname=" + fsname + ",subtype=strata-overlay,default_permissions";
    if (allow_other) {
        mount_opts += ",allow_other";
    }
    if (!fs.writable()) {
        mount_opts += ",ro";
    }
    std::vector<std::string> argv_s = {"strata-overlay", "-o", mount_opts};
    if (log::enabled(log::Level::trace)) {
        argv_s.emplace_back("-d");
    }
    std::vector<char*> argv;
    for (auto& a : argv_s) {
        argv.push_back(a.data());
    }
    fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
    fuse_lowlevel_ops ops = make_ops();
    std::unique_ptr<fuse_session, SessionDeleter> se(
        fuse_session_new(&args, &ops, sizeof ops, &fs));
    if (!se) {
        throw Error("union filesystem: fuse_session_new failed for \"" + target + "\"");
    }
    if (fuse_set_signal_handlers(se.get()) != 0) {
        throw Error("union filesystem: cannot install signal handlers");
    }
    ScopeExit restore_signals([&] { fuse_remove_signal_handlers(se.get()); });
    // Files are created with exactly the mode the caller asked for (the
    // kernel applied the caller's umask already).
    ::umask(0);
    if (fuse_session_mount(se.get(), target.c_str()) != 0) {
        throw SysError("mount fuse.strata-overlay", target, EIO);
    }
    // From here on the mount exists: it goes again when the session ends
    // (unmounted from outside: libfuse sees the connection gone and skips).
    ScopeExit unmount_at_end([&] { fuse_session_unmount(se.get()); });
    fuse_buf buf{};
    ScopeExit free_buf([&] { std::free(buf.mem); });
    if (daemonize) {
        if (!daemonize_when_ready(se.get(), fs, buf, target)) {
            return 1;
        }
    } else if (::chdir("/") != 0) {
        // "/" always exists.
    }
    int left = k_inline_requests;
    int r = 0;
    if (serve_inline(se.get(), buf, [&] { return left-- == 0; })) {
        std::free(buf.mem);
        buf = fuse_buf{};
        fuse_loop_config* cfg = fuse_loop_cfg_create();
        fuse_loop_cfg_set_clone_fd(cfg, 0);
        fuse_loop_cfg_set_max_threads(cfg, 16);
        fuse_loop_cfg_set_idle_threads(cfg, 8);
        r = fuse_session_loop_mt(se.get(), cfg);
        fuse_loop_cfg_destroy(cfg);
    }
    STRATA_LOG_DEBUG("union fs: session on \"{}\" ended ({})", target, r);
    return r < 0 ? 1 : 0;
}

} // namespace strata::layerfs
