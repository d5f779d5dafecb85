#include "util/fd.hpp"

#include "util/error.hpp"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace strata {

void UniqueFd::close() {
    int fd = std::exchange(m_fd, -1);
    if (fd >= 0 && ::close(fd) != 0 && errno != EINTR) {
        throw_errno("close");
    }
}

void UniqueFd::reset(int fd) noexcept {
    int old = std::exchange(m_fd, fd);
    if (old >= 0) {
        int saved = errno;
        ::close(old);
        errno = saved;
    }
}

Pipe Pipe::create() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        throw_errno("pipe2");
    }
    return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

UniqueFd dup_cloexec(int fd) {
    int r = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (r < 0) {
        throw_errno("fcntl(F_DUPFD_CLOEXEC)");
    }
    return UniqueFd(r);
}

} // namespace strata
