#include "util/sys/syscalls.hpp"

#include "util/error.hpp"
#include "util/sys/process.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/mount.h>
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
    return openat2_direct(dirfd, path, flags, mode, resolve);
}

// The throwing wrappers below sit on the noexcept raw calls of
// util/sys/process.hpp, which the runner's child uses directly.
namespace {

int check(int r, const char* call, const std::string& what) {
    if (r < 0) {
        throw SysError(call, what, -r);
    }
    return r;
}

} // namespace

UniqueFd openat2(int dirfd, const std::string& path, std::uint64_t flags, std::uint64_t mode,
                 std::uint64_t resolve) {
    return UniqueFd(check(openat2_raw(dirfd, path.c_str(), flags, mode, resolve), "openat2", path));
}

UniqueFd fsopen(const std::string& fstype) {
    if (force_fallback()) {
        throw SysError("fsopen", fstype, ENOSYS);
    }
    return UniqueFd(check(fsopen_raw(fstype.c_str(), FSOPEN_CLOEXEC), "fsopen", fstype));
}

void fsconfig_flag(int fsfd, const std::string& key) {
    check(fsconfig_raw(fsfd, FSCONFIG_SET_FLAG, key.c_str(), nullptr), "fsconfig", key);
}

void fsconfig_string(int fsfd, const std::string& key, const std::string& value) {
    check(fsconfig_raw(fsfd, FSCONFIG_SET_STRING, key.c_str(), value.c_str()), "fsconfig",
          key + "=" + value);
}

void fsconfig_create(int fsfd) {
    check(fsconfig_raw(fsfd, FSCONFIG_CMD_CREATE, nullptr, nullptr), "fsconfig", "create");
}

UniqueFd fsmount(int fsfd, unsigned attr_flags) {
    return UniqueFd(check(fsmount_raw(fsfd, FSMOUNT_CLOEXEC, attr_flags), "fsmount", ""));
}

void move_mount(int from_dirfd, const std::string& from_path, int to_dirfd,
                const std::string& to_path, unsigned flags) {
    check(move_mount_raw(from_dirfd, from_path.c_str(), to_dirfd, to_path.c_str(), flags),
          "move_mount", to_path);
}

UniqueFd open_tree(int dirfd, const std::string& path, unsigned flags) {
    if (force_fallback()) {
        throw SysError("open_tree", path, ENOSYS);
    }
    return UniqueFd(
        check(open_tree_raw(dirfd, path.c_str(), flags | OPEN_TREE_CLOEXEC), "open_tree", path));
}

void mount_setattr(int dirfd, const std::string& path, unsigned flags, std::uint64_t attr_set,
                   std::uint64_t attr_clr, std::uint64_t propagation) {
    check(mount_setattr_direct(dirfd, path.c_str(), flags, attr_set, attr_clr, propagation),
          "mount_setattr", path);
}

int pivot_root(const char* new_root, const char* put_old) noexcept {
    return static_cast<int>(::syscall(SYS_pivot_root, new_root, put_old));
}

int close_range(unsigned first, unsigned last, unsigned flags) noexcept {
    return static_cast<int>(::syscall(SYS_close_range, first, last, flags));
}

} // namespace strata::sys
