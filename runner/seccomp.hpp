// Seccomp profiles in Docker's JSON format (`docker run --security-opt
// seccomp=FILE`), and Docker's own default profile, compiled into the binary
// from runner/profiles/docker-default.json.
//
// A profile is parsed once (parse_seccomp_profile), then compiled for this
// machine and one container's capabilities (compile_seccomp): the same
// selection moby makes (archMap entry of the native architecture,
// includes/excludes by architecture, capability and minimum kernel), then
// libseccomp turns the rules into a classic BPF program. The runner compiles
// in the parent, before clone, so that the child only hands the finished
// program to seccomp(2): it may not allocate.
//
// Like runc, syscalls above the highest number the profile names for the
// native architecture fail with ENOSYS instead of the default action, so that
// programs probing for a newer syscall than the profile knows fall back (as
// glibc does for clone3) instead of treating EPERM as final. Names libseccomp
// does not know are skipped, as runc does. Not supported: SCMP_ACT_NOTIFY
// (needs a listener; refused), listenerPath.
#pragma once

#include <cstdint>
#include <linux/filter.h>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace strata::runner {

struct SeccompArg {
    unsigned index = 0;
    std::uint64_t value = 0;
    std::uint64_t value_two = 0;
    std::string op; // SCMP_CMP_EQ ...
};

// "includes" / "excludes" of a syscall entry.
struct SeccompFilterCond {
    std::vector<std::string> arches; // Go names: amd64, arm64, x86, s390x...
    std::vector<std::string> caps;   // CAP_SYS_ADMIN ...
    std::string min_kernel;          // "4.8"
};

struct SeccompSyscall {
    std::vector<std::string> names;
    std::string action;                // SCMP_ACT_ALLOW ...
    std::optional<unsigned> errno_ret; // SCMP_ACT_ERRNO / SCMP_ACT_TRACE
    std::vector<SeccompArg> args;
    SeccompFilterCond includes;
    SeccompFilterCond excludes;
};

struct SeccompProfile {
    std::string source; // where it came from, for messages: a file name, "default"
    std::string default_action;
    std::optional<unsigned> default_errno_ret;
    std::vector<std::string> architectures; // SCMP_ARCH_*
    struct ArchMap {
        std::string architecture;
        std::vector<std::string> sub_architectures;
    };
    std::vector<ArchMap> arch_map;
    std::vector<std::string> flags; // SECCOMP_FILTER_FLAG_*
    std::vector<SeccompSyscall> syscalls;
};

// A finished filter: what seccomp(SECCOMP_SET_MODE_FILTER, flags, ...) takes.
struct SeccompProgram {
    std::vector<sock_filter> code;
    unsigned flags = 0;
};

// Docker's default profile, as shipped in runner/profiles/docker-default.json.
std::string_view docker_default_seccomp_profile() noexcept;

// Parses a profile in Docker's JSON format. Unknown fields are ignored (as
// Docker does); a field of the wrong type, an unknown action, operator,
// architecture or flag throws Error naming source and the entry.
SeccompProfile parse_seccomp_profile(std::string_view json, const std::string& source);

// A kernel version (major, minor), for minKernel.
using KernelVersion = std::pair<int, int>;

// Compiles profile for this machine and a container whose bounding set is
// caps (bit n = capability n); minKernel conditions are judged against
// kernel, by default the running one. Throws Error naming the profile and
// the syscall libseccomp refused.
SeccompProgram compile_seccomp(const SeccompProfile& profile, std::uint64_t caps,
                               std::optional<KernelVersion> kernel = std::nullopt);

// libseccomp takes tens of milliseconds to compile Docker's profile (more
// than a whole container start), so the build compiles it once for Docker's
// default capability set (runner/seccomp_gen.cpp) and the runner uses that
// program when nothing differs: the built-in profile, those capabilities.
// minKernel is judged for k_kernel_floor, the oldest kernel the runner runs
// on. nullopt when caps differ (or the build could not precompile).
inline constexpr KernelVersion k_kernel_floor{5, 6};
std::optional<SeccompProgram> precompiled_default_seccomp(std::uint64_t caps);

} // namespace strata::runner
