// The FUSE session: mounting the union, the daemon's start-up and the
// request loops.

#include "layerfs/fuse_daemon.hpp"
#include "layerfs/union/fs.hpp"

#include "util/error.hpp"
#include "util/log.hpp"
#include "util/scope.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>

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
        if (!daemonize_when_ready(se.get(), buf, target, "strata-overlay",
                                  [&] { return fs.initialized(); })) {
            return 1;
        }
    } else if (::chdir("/") != 0) {
        // "/" always exists.
    }
    int left = k_inline_requests;
    int r = 0;
    if (serve_inline(
            se.get(), buf, [&] { return left-- == 0; }, "union fs")) {
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
