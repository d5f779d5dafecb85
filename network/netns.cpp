#include "network/netns.hpp"

#include "util/error.hpp"

#include <cerrno>
#include <exception>
#include <fcntl.h>
#include <sched.h>
#include <thread>
#include <unistd.h>

namespace strata::network {

UniqueFd current_netns() {
    UniqueFd fd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!fd) {
        throw_errno("open", "/proc/thread-self/ns/net");
    }
    return fd;
}

UniqueFd new_netns(const std::function<void()>& inside) {
    UniqueFd back = current_netns();
    if (::unshare(CLONE_NEWNET) != 0) {
        throw_errno("unshare(CLONE_NEWNET)", "(container networks need root)");
    }
    UniqueFd fd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    int open_err = errno;
    std::exception_ptr error;
    if (fd && inside) {
        try {
            inside();
        } catch (...) {
            error = std::current_exception();
        }
    }
    if (::setns(back.get(), CLONE_NEWNET) != 0) {
        // The thread would stay in the new namespace: nothing sane is left.
        std::terminate();
    }
    if (!fd) {
        throw SysError("open", "/proc/thread-self/ns/net", open_err);
    }
    if (error) {
        std::rethrow_exception(error);
    }
    return fd;
}

void with_netns(int netns_fd, const std::function<void()>& fn) {
    std::exception_ptr error;
    std::thread t([&] {
        try {
            if (::setns(netns_fd, CLONE_NEWNET) != 0) {
                throw_errno("setns(CLONE_NEWNET)", "/proc/self/fd/" + std::to_string(netns_fd));
            }
            fn();
        } catch (...) {
            error = std::current_exception();
        }
    });
    t.join();
    if (error) {
        std::rethrow_exception(error);
    }
}

bool ipv4_forwarding_enabled() {
    // /proc/sys/net follows the namespace of the thread that opens it.
    UniqueFd fd(::open("/proc/sys/net/ipv4/ip_forward", O_RDONLY | O_CLOEXEC));
    if (!fd) {
        return false;
    }
    char c = '0';
    return ::read(fd.get(), &c, 1) == 1 && c == '1';
}

} // namespace strata::network
