// Thin wrappers over mount(2) and umount2(2): the classic mount API, used as
// the fallback when the new one (fsopen/fsmount, util/sys/syscalls.hpp) is
// missing. Both throw SysError naming the target.
#pragma once

#include <string>

namespace strata::sys {

// mount(2). data may be empty. Throws SysError("mount", target).
void mount(const std::string& source, const std::string& target, const std::string& fstype,
           unsigned long flags, const std::string& data);
// Returns 0 or -errno; for forked children and probes (no allocation, no throw).
int mount_raw(const char* source, const char* target, const char* fstype, unsigned long flags,
              const char* data) noexcept;
// umount2(2). Throws SysError("umount2", target).
void umount(const std::string& target, int flags = 0);
// Returns 0 or -errno.
int umount_raw(const char* target, int flags) noexcept;
// True when path is the root of a mount in this process's namespace
// (per /proc/self/mountinfo); false when absent.
bool is_mount_point(const std::string& path);

} // namespace strata::sys
