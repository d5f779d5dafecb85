#include "util/fd.hpp"

#include "util/error.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
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

bool send_fd(int sock, int fd) noexcept {
    char byte = 0;
    struct iovec iov {
        &byte, 1
    };
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    std::memset(&control, 0, sizeof control);
    struct msghdr msg;
    std::memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    return ::sendmsg(sock, &msg, MSG_NOSIGNAL) == 1;
}

UniqueFd receive_fd(int sock) noexcept {
    char byte;
    struct iovec iov {
        &byte, 1
    };
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t got;
    do {
        got = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (got < 0 && errno == EINTR);
    struct cmsghdr* cmsg = got > 0 ? CMSG_FIRSTHDR(&msg) : nullptr;
    if (cmsg == nullptr || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) {
        return UniqueFd();
    }
    int fd;
    std::memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
    return UniqueFd(fd);
}

} // namespace strata
