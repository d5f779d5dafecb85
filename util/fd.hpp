// UniqueFd: a move-only owner of a file descriptor. Every fd strata opens is
// close-on-exec so nothing leaks into the runner's children by accident.
#pragma once

#include <utility>

namespace strata {

class UniqueFd {
public:
    UniqueFd() noexcept = default;
    explicit UniqueFd(int fd) noexcept : m_fd(fd) {}
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    UniqueFd(UniqueFd&& o) noexcept : m_fd(std::exchange(o.m_fd, -1)) {}
    UniqueFd& operator=(UniqueFd&& o) noexcept {
        if (this != &o) {
            reset(std::exchange(o.m_fd, -1));
        }
        return *this;
    }
    ~UniqueFd() { reset(); }

    int get() const noexcept { return m_fd; }
    explicit operator bool() const noexcept { return m_fd >= 0; }
    [[nodiscard]] int release() noexcept { return std::exchange(m_fd, -1); }
    // Closes now and reports a failed close (e.g. EIO on NFS) as SysError.
    void close();
    // Closes silently (keeps errno intact) and takes ownership of fd.
    void reset(int fd = -1) noexcept;

private:
    int m_fd = -1;
};

// A pipe whose both ends are O_CLOEXEC.
struct Pipe {
    UniqueFd read;
    UniqueFd write;
    static Pipe create();
};

// dup with F_DUPFD_CLOEXEC.
UniqueFd dup_cloexec(int fd);

// Passing a file descriptor over a unix socket (SCM_RIGHTS) with one byte of
// data. send_fd allocates nothing and only calls sendmsg, so a child between
// clone and exec may call it; false on failure with errno from sendmsg.
bool send_fd(int sock, int fd) noexcept;
// The descriptor the other end sent, close-on-exec; empty when it closed
// the socket or sent no descriptor (EINTR is retried).
UniqueFd receive_fd(int sock) noexcept;

} // namespace strata
