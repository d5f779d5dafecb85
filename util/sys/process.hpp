// Raw process, credential and mount-attribute syscalls that glibc does not
// wrap (clone3, capget/capset, pidfd_send_signal, mount_setattr). These are
// noexcept and return -errno, because the runner calls them between clone
// and exec, where nothing may throw or allocate.
#pragma once

#include <cstdint>
#include <sys/types.h>

namespace strata::sys {

// clone3(2) without CLONE_VM and without a new stack: it returns twice like
// fork (0 in the child). flags is a mask of CLONE_* (CLONE_NEW*, CLONE_PIDFD);
// with CLONE_PIDFD, *pidfd receives a close-on-exec pidfd. The child is
// reported with SIGCHLD. Returns the pid, 0 in the child, or -errno.
pid_t clone3_fork(std::uint64_t flags, int* pidfd) noexcept;

// clone(2) with CLONE_VM | CLONE_VFORK, the child running fn(arg) on a
// stack of its own (posix_spawn's way): no page tables are copied and the
// child takes no copy-on-write faults, which for a large caller is most of
// what a fork costs. The caller is suspended until the child calls execve
// or _exit; until then the child shares the caller's memory, so fn must not
// return, throw, or change state the caller relies on. flags as for
// clone3_fork (CLONE_NEW*, CLONE_PIDFD). Returns the pid or -errno.
pid_t clone_vfork(std::uint64_t flags, int (*fn)(void*), void* arg, int* pidfd) noexcept;

// pidfd_send_signal(2). Returns 0 or -errno.
int pidfd_send_signal(int pidfd, int sig) noexcept;

// capset(2) for the calling thread with the v3 (64-bit) layout. Masks are
// bit sets over capability numbers. Returns 0 or -errno.
int capset_self(std::uint64_t effective, std::uint64_t permitted,
                std::uint64_t inheritable) noexcept;
// capget(2) for the calling thread. Returns 0 or -errno.
int capget_self(std::uint64_t* effective, std::uint64_t* permitted,
                std::uint64_t* inheritable) noexcept;

// mount_setattr(2) on dirfd+path (AT_EMPTY_PATH with ""): sets and clears
// MOUNT_ATTR_* bits, recursively with AT_RECURSIVE in flags. Returns 0 or
// -errno; -ENOSYS when the kernel lacks it or the fallback is forced.
int mount_setattr_raw(int dirfd, const char* path, unsigned flags, std::uint64_t attr_set,
                      std::uint64_t attr_clr) noexcept;
// The same with a propagation type (MS_PRIVATE...), never forced to ENOSYS.
int mount_setattr_direct(int dirfd, const char* path, unsigned flags, std::uint64_t attr_set,
                         std::uint64_t attr_clr, std::uint64_t propagation) noexcept;

// The highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap).
int cap_last_cap() noexcept;

} // namespace strata::sys

namespace strata::sys {

// The new mount API as raw calls for code that may not throw (the runner's
// child). Each returns an fd or 0 on success, -errno on failure. They do
// not look at force_fallback(): the caller probes once (in the parent,
// where it may) and passes the decision down.
int open_tree_raw(int dirfd, const char* path, unsigned flags) noexcept;
int move_mount_raw(int from_dirfd, const char* from_path, int to_dirfd, const char* to_path,
                   unsigned flags) noexcept;
int fsopen_raw(const char* fstype, unsigned flags) noexcept;
// cmd: FSCONFIG_SET_FLAG (value null), FSCONFIG_SET_STRING, FSCONFIG_CMD_CREATE.
int fsconfig_raw(int fsfd, unsigned cmd, const char* key, const char* value) noexcept;
int fsmount_raw(int fsfd, unsigned flags, unsigned attr_flags) noexcept;

} // namespace strata::sys

namespace strata::sys {

// openat2(2) like openat2_raw, but never forced to ENOSYS by
// STRATA_FORCE_FALLBACK: for callers with no fallback of their own (the
// runner's child needs RESOLVE_IN_ROOT, Linux 5.6).
int openat2_direct(int dirfd, const char* path, std::uint64_t flags, std::uint64_t mode,
                   std::uint64_t resolve) noexcept;

} // namespace strata::sys
