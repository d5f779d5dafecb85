// The only place that calls raw Linux syscalls without a glibc wrapper.
// Each wrapper retries EINTR where that is safe and throws SysError; a
// kernel without the call gives SysError with ENOSYS, which is what
// triggers the callers' fallback paths.
#pragma once

#include "util/fd.hpp"

#include <cstdint>
#include <string>
#include <sys/types.h>

namespace strata::sys {

// openat2(2). resolve is a mask of RESOLVE_* flags.
UniqueFd openat2(int dirfd, const std::string& path, std::uint64_t flags, std::uint64_t mode,
                 std::uint64_t resolve);
// Returns -errno instead of throwing (for probing / fallbacks).
int openat2_raw(int dirfd, const char* path, std::uint64_t flags, std::uint64_t mode,
                std::uint64_t resolve) noexcept;

// The new mount API.
UniqueFd fsopen(const std::string& fstype);
void fsconfig_flag(int fsfd, const std::string& key);
void fsconfig_string(int fsfd, const std::string& key, const std::string& value);
void fsconfig_create(int fsfd);
UniqueFd fsmount(int fsfd, unsigned attr_flags);
void move_mount(int from_dirfd, const std::string& from_path, int to_dirfd,
                const std::string& to_path, unsigned flags);
UniqueFd open_tree(int dirfd, const std::string& path, unsigned flags);
void mount_setattr(int dirfd, const std::string& path, unsigned flags, std::uint64_t attr_set,
                   std::uint64_t attr_clr, std::uint64_t propagation = 0);

int pivot_root(const char* new_root, const char* put_old) noexcept;
int close_range(unsigned first, unsigned last, unsigned flags) noexcept;
// Test-only switch: when STRATA_FORCE_FALLBACK=1 the new APIs report ENOSYS,
// so the fallback paths are exercised.
bool force_fallback() noexcept;

} // namespace strata::sys
