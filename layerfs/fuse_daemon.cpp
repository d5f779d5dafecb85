#include "layerfs/fuse_daemon.hpp"

#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/log.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

namespace strata::layerfs {

bool serve_inline(fuse_session* se, fuse_buf& buf, const std::function<bool()>& enough,
                  const char* what) {
    while (!fuse_session_exited(se)) {
        if (enough()) {
            return true;
        }
        int r = fuse_session_receive_buf(se, &buf);
        if (r == -EINTR) {
            continue; // a signal: its handler may have ended the session
        }
        if (r < 0) {
            STRATA_LOG_ERROR("{}: reading /dev/fuse: {}", what, std::strerror(-r));
            fuse_session_exit(se);
        }
        if (r <= 0) {
            return false; // 0: unmounted (libfuse marked the session exited)
        }
        fuse_session_process_buf(se, &buf);
    }
    return false;
}

void log_to_syslog(const char* ident) {
    ::openlog(ident, LOG_PID, LOG_DAEMON);
    log::set_sink([](log::Level level, std::string_view message) {
        int prio = level == log::Level::error  ? LOG_ERR
                   : level == log::Level::warn ? LOG_WARNING
                                               : LOG_DEBUG;
        ::syslog(prio, "%.*s", static_cast<int>(message.size()), message.data());
    });
}

bool daemonize_when_ready(fuse_session* se, fuse_buf& buf, const std::string& target,
                          const char* ident, const std::function<bool()>& initialized) {
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
        throw Error(std::string(ident) + " on \"" + target +
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
    log_to_syslog(ident);
    bool ok = serve_inline(se, buf, initialized, ident);
    char c = ok ? 1 : 0;
    if (::write(ready.write.get(), &c, 1) != 1) {
        // The parent died: the mount is served all the same.
    }
    return ok;
}

} // namespace strata::layerfs
