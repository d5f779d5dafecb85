#include "util/sys/syscalls.hpp"

#include "util/error.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef FSCONFIG_SET_FLAG
#define FSCONFIG_SET_FLAG 0
#define FSCONFIG_SET_STRING 1
#define FSCONFIG_CMD_CREATE 6
#endif

namespace strata::sys {

bool force_fallback() noexcept {
    static const bool forced = [] {
        const char* v = std::getenv("STRATA_FORCE_FALLBACK");
        return v != nullptr && std::strcmp(v, "1") == 0;
    }();
    return forced;
}

int openat2_raw(int dirfd, const char* path, std::uint64_t flags, std::uint64_t mode,
                std::uint64_t resolve) noexcept {
    if (force_fallback()) {
        return -ENOSYS;
    }
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

UniqueFd openat2(int dirfd, const std::string& path, std::uint64_t flags, std::uint64_t mode,
                 std::uint64_t resolve) {
    int r = openat2_raw(dirfd, path.c_str(), flags, mode, resolve);
    if (r < 0) {
        throw SysError("openat2", path, -r);
    }
    return UniqueFd(r);
}

UniqueFd fsopen(const std::string& fstype) {
    if (force_fallback()) {
        throw SysError("fsopen", fstype, ENOSYS);
    }
    long r = ::syscall(SYS_fsopen, fstype.c_str(), FSOPEN_CLOEXEC);
    if (r < 0) {
        throw_errno("fsopen", fstype);
    }
    return UniqueFd(static_cast<int>(r));
}

void fsconfig_flag(int fsfd, const std::string& key) {
    if (::syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FLAG, key.c_str(), nullptr, 0) < 0) {
        throw_errno("fsconfig", key);
    }
}

void fsconfig_string(int fsfd, const std::string& key, const std::string& value) {
    if (::syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, key.c_str(), value.c_str(), 0) < 0) {
        throw_errno("fsconfig", key + "=" + value);
    }
}

void fsconfig_create(int fsfd) {
    if (::syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) {
        throw_errno("fsconfig", "create");
    }
}

UniqueFd fsmount(int fsfd, unsigned attr_flags) {
    long r = ::syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, attr_flags);
    if (r < 0) {
        throw_errno("fsmount");
    }
    return UniqueFd(static_cast<int>(r));
}

void move_mount(int from_dirfd, const std::string& from_path, int to_dirfd,
                const std::string& to_path, unsigned flags) {
    if (::syscall(SYS_move_mount, from_dirfd, from_path.c_str(), to_dirfd, to_path.c_str(),
                  flags) < 0) {
        throw_errno("move_mount", to_path);
    }
}

UniqueFd open_tree(int dirfd, const std::string& path, unsigned flags) {
    if (force_fallback()) {
        throw SysError("open_tree", path, ENOSYS);
    }
    long r = ::syscall(SYS_open_tree, dirfd, path.c_str(), flags | OPEN_TREE_CLOEXEC);
    if (r < 0) {
        throw_errno("open_tree", path);
    }
    return UniqueFd(static_cast<int>(r));
}

void mount_setattr(int dirfd, const std::string& path, unsigned flags, std::uint64_t attr_set,
                   std::uint64_t attr_clr, std::uint64_t propagation) {
    struct mount_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.attr_set = attr_set;
    attr.attr_clr = attr_clr;
    attr.propagation = propagation;
    if (::syscall(SYS_mount_setattr, dirfd, path.c_str(), flags, &attr, sizeof attr) < 0) {
        throw_errno("mount_setattr", path);
    }
}

int pivot_root(const char* new_root, const char* put_old) noexcept {
    return static_cast<int>(::syscall(SYS_pivot_root, new_root, put_old));
}

int close_range(unsigned first, unsigned last, unsigned flags) noexcept {
    return static_cast<int>(::syscall(SYS_close_range, first, last, flags));
}

} // namespace strata::sys
