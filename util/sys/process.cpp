#include "util/sys/process.hpp"

#include "util/fd.hpp"
#include "util/sys/syscalls.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace strata::sys {

pid_t clone3_fork(std::uint64_t flags, int* pidfd) noexcept {
    struct clone_args args;
    std::memset(&args, 0, sizeof args);
    args.flags = flags;
    args.exit_signal = SIGCHLD;
    if ((flags & CLONE_PIDFD) != 0) {
        args.pidfd = reinterpret_cast<std::uint64_t>(pidfd);
    }
    long r = ::syscall(SYS_clone3, &args, sizeof args);
    return r < 0 ? -errno : static_cast<pid_t>(r);
}

pid_t clone_vfork(std::uint64_t flags, int (*fn)(void*), void* arg, int* pidfd) noexcept {
    // 256 KiB above a guard page; the child's own frames are small (it
    // works from a pre-built plan), and the pages are only touched as used.
    constexpr std::size_t page = 4096;
    constexpr std::size_t stack_size = 256 * 1024;
    void* mem = ::mmap(nullptr, stack_size + page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (mem == MAP_FAILED) {
        return -errno;
    }
    ::mprotect(mem, page, PROT_NONE);
    char* top = static_cast<char*>(mem) + page + stack_size;
    int r = ::clone(fn, top, static_cast<int>(flags) | CLONE_VM | CLONE_VFORK | SIGCHLD, arg,
                    (flags & CLONE_PIDFD) != 0 ? pidfd : nullptr);
    int err = errno;
    // The child has exec'd or exited: its stack is free again.
    ::munmap(mem, stack_size + page);
    return r < 0 ? -err : static_cast<pid_t>(r);
}

int pidfd_send_signal(int pidfd, int sig) noexcept {
    long r = ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
    return r < 0 ? -errno : 0;
}

int capset_self(std::uint64_t effective, std::uint64_t permitted,
                std::uint64_t inheritable) noexcept {
    struct __user_cap_header_struct header;
    header.version = _LINUX_CAPABILITY_VERSION_3;
    header.pid = 0;
    struct __user_cap_data_struct data[2];
    data[0].effective = static_cast<std::uint32_t>(effective);
    data[1].effective = static_cast<std::uint32_t>(effective >> 32);
    data[0].permitted = static_cast<std::uint32_t>(permitted);
    data[1].permitted = static_cast<std::uint32_t>(permitted >> 32);
    data[0].inheritable = static_cast<std::uint32_t>(inheritable);
    data[1].inheritable = static_cast<std::uint32_t>(inheritable >> 32);
    long r = ::syscall(SYS_capset, &header, data);
    return r < 0 ? -errno : 0;
}

int capget_self(std::uint64_t* effective, std::uint64_t* permitted,
                std::uint64_t* inheritable) noexcept {
    struct __user_cap_header_struct header;
    header.version = _LINUX_CAPABILITY_VERSION_3;
    header.pid = 0;
    struct __user_cap_data_struct data[2];
    std::memset(data, 0, sizeof data);
    long r = ::syscall(SYS_capget, &header, data);
    if (r < 0) {
        return -errno;
    }
    auto join = [](std::uint32_t lo, std::uint32_t hi) {
        return static_cast<std::uint64_t>(lo) | (static_cast<std::uint64_t>(hi) << 32);
    };
    *effective = join(data[0].effective, data[1].effective);
    *permitted = join(data[0].permitted, data[1].permitted);
    *inheritable = join(data[0].inheritable, data[1].inheritable);
    return 0;
}

int mount_setattr_raw(int dirfd, const char* path, unsigned flags, std::uint64_t attr_set,
                      std::uint64_t attr_clr) noexcept {
    if (force_fallback()) {
        return -ENOSYS;
    }
    return mount_setattr_direct(dirfd, path, flags, attr_set, attr_clr, 0);
}

int mount_setattr_direct(int dirfd, const char* path, unsigned flags, std::uint64_t attr_set,
                         std::uint64_t attr_clr, std::uint64_t propagation) noexcept {
    struct mount_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.attr_set = attr_set;
    attr.attr_clr = attr_clr;
    attr.propagation = propagation;
    long r = ::syscall(SYS_mount_setattr, dirfd, path, flags, &attr, sizeof attr);
    return r < 0 ? -errno : 0;
}

int cap_last_cap() noexcept {
    static const int last = [] {
        UniqueFd fd(::open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC));
        if (!fd) {
            return CAP_LAST_CAP;
        }
        char buf[16] = {};
        ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
        int v = n > 0 ? std::atoi(buf) : 0;
        return v > 0 && v < 64 ? v : CAP_LAST_CAP;
    }();
    return last;
}

} // namespace strata::sys

namespace strata::sys {

int open_tree_raw(int dirfd, const char* path, unsigned flags) noexcept {
    long r = ::syscall(SYS_open_tree, dirfd, path, flags);
    return r < 0 ? -errno : static_cast<int>(r);
}

int move_mount_raw(int from_dirfd, const char* from_path, int to_dirfd, const char* to_path,
                   unsigned flags) noexcept {
    long r = ::syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd, to_path, flags);
    return r < 0 ? -errno : 0;
}

int fsopen_raw(const char* fstype, unsigned flags) noexcept {
    long r = ::syscall(SYS_fsopen, fstype, flags);
    return r < 0 ? -errno : static_cast<int>(r);
}

int fsconfig_raw(int fsfd, unsigned cmd, const char* key, const char* value) noexcept {
    long r = ::syscall(SYS_fsconfig, fsfd, cmd, key, value, 0);
    return r < 0 ? -errno : 0;
}

int fsmount_raw(int fsfd, unsigned flags, unsigned attr_flags) noexcept {
    long r = ::syscall(SYS_fsmount, fsfd, flags, attr_flags);
    return r < 0 ? -errno : static_cast<int>(r);
}

} // namespace strata::sys

#include <linux/openat2.h>

namespace strata::sys {

int openat2_direct(int dirfd, const char* path, std::uint64_t flags, std::uint64_t mode,
                   std::uint64_t resolve) noexcept {
    struct open_how how;
    std::memset(&how, 0, sizeof how);
    how.flags = flags | O_CLOEXEC;
    how.mode = mode;
    how.resolve = resolve;
    long r;
    do {
        r = ::syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    } while (r < 0 && (errno == EINTR || errno == EAGAIN));
    return r < 0 ? -errno : static_cast<int>(r);
}

} // namespace strata::sys
