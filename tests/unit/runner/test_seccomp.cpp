// The seccomp profile parser and compiler. The compiled filters are loaded
// in a forked child (no_new_privs first, so no privilege is needed), which
// then makes the system calls and reports through its exit status.
#include "runner/runner.hpp"
#include "runner/seccomp.hpp"
#include "util/error.hpp"

#include <catch2/catch.hpp>
#include <cerrno>
#include <fcntl.h>
#include <functional>
#include <linux/capability.h>
#include <linux/keyctl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace strata;
using namespace strata::runner;

namespace {

// Runs check in a child under program; its result (an errno, or 0) comes
// back as the exit status. 200: the filter could not be loaded.
int errno_under(const SeccompProgram& program, const std::function<long()>& call) {
    pid_t pid = ::fork();
    if (pid == 0) {
        struct sock_fprog fprog {};
        fprog.len = static_cast<unsigned short>(program.code.size());
        fprog.filter = const_cast<sock_filter*>(program.code.data());
        if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
            ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, program.flags, &fprog) != 0) {
            _exit(200);
        }
        errno = 0;
        long r = call();
        _exit(r < 0 ? (errno & 0xff) : 0);
    }
    REQUIRE(pid > 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
}

SeccompProgram default_program(std::uint64_t caps) {
    return compile_seccomp(parse_seccomp_profile(docker_default_seccomp_profile(), "default"),
                           caps);
}

long clone_flags(unsigned long flags) {
    long pid = ::syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        _exit(0);
    }
    if (pid > 0) {
        ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
    }
    return pid;
}

} // namespace

TEST_CASE("Docker's default profile is built in and parses") {
    SeccompProfile p = parse_seccomp_profile(docker_default_seccomp_profile(), "default");
    CHECK(p.default_action == "SCMP_ACT_ERRNO");
    CHECK(p.default_errno_ret == 1u);
    CHECK(p.arch_map.size() == 8);
    REQUIRE_FALSE(p.syscalls.empty());
    CHECK(p.syscalls.front().action == "SCMP_ACT_ALLOW");
    bool clone3_enosys = false;
    for (const auto& s : p.syscalls) {
        if (s.names == std::vector<std::string>{"clone3"} && s.action == "SCMP_ACT_ERRNO") {
            clone3_enosys = s.errno_ret == unsigned{ENOSYS} &&
                            s.excludes.caps == std::vector<std::string>{"CAP_SYS_ADMIN"};
        }
    }
    CHECK(clone3_enosys);
}

TEST_CASE("the default profile refuses what Docker's refuses and allows ordinary work") {
    SeccompProgram prog = default_program(default_capabilities());
    CHECK(errno_under(prog, [] { return ::unshare(CLONE_NEWUSER); }) == EPERM);
    CHECK(errno_under(prog, [] { return clone_flags(CLONE_NEWUSER); }) == EPERM);
    CHECK(errno_under(prog, [] { return clone_flags(0); }) == 0);
    CHECK(errno_under(prog, [] { return ::syscall(SYS_kexec_load, 0, 0, nullptr, 0); }) == EPERM);
    CHECK(errno_under(prog, [] {
              return ::syscall(SYS_add_key, "user", "k", "v", 1, KEY_SPEC_PROCESS_KEYRING);
          }) == EPERM);
    CHECK(errno_under(prog, [] { return ::syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, -3, 0); }) ==
          EPERM);
    CHECK(errno_under(prog, [] { return ::socket(40 /* AF_VSOCK */, SOCK_STREAM, 0); }) == EPERM);
    CHECK(errno_under(prog, [] { return ::personality(PER_LINUX); }) == 0);
    CHECK(errno_under(prog, [] { return ::personality(0xffffffff); }) == 0);
    CHECK(errno_under(prog, [] { return ::personality(READ_IMPLIES_EXEC); }) == EPERM);
    CHECK(errno_under(prog, [] {
              return ::mount("none", "/nonexistent-strata-test", "tmpfs", 0, nullptr);
          }) == EPERM);
    // clone3 and syscalls newer than the profile: ENOSYS, so that callers fall back.
    CHECK(errno_under(prog, [] { return ::syscall(SYS_clone3, nullptr, 0); }) == ENOSYS);
    CHECK(errno_under(prog, [] { return ::syscall(1000); }) == ENOSYS);
    CHECK(errno_under(prog, [] { return ::getpid(); }) == 0);
    CHECK(errno_under(prog, [] { return ::open("/proc/self/status", O_RDONLY | O_CLOEXEC); }) == 0);
}

TEST_CASE("capability-conditional entries follow the container's capabilities") {
    std::uint64_t admin = default_capabilities() | (std::uint64_t{1} << CAP_SYS_ADMIN);
    SeccompProgram prog = default_program(admin);
    // clone3 reaches the kernel (EINVAL for a bad size) and unshare is allowed.
    CHECK(errno_under(prog, [] { return ::syscall(SYS_clone3, nullptr, 0); }) == EINVAL);
    CHECK(errno_under(prog, [] { return ::unshare(0); }) == 0);
    std::uint64_t none = 0;
    SeccompProgram bare = default_program(none);
    CHECK(errno_under(bare, [] { return ::unshare(0); }) == EPERM);
}

TEST_CASE("a profile of one's own: its default action, errno and argument filters") {
    SeccompProfile p = parse_seccomp_profile(R"({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"name": "personality", "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["no_such_syscall_here"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
             "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["getpgrp"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
             "excludes": {"arches": ["amd64", "arm64", "x86", "arm", "s390x", "ppc64le", "riscv64"]}}
        ]
    })",
                                             "mine.json");
    SeccompProgram prog = compile_seccomp(p, default_capabilities());
    CHECK(errno_under(prog, [] { return ::mkdir("/nonexistent-strata-test/d", 0755); }) == EACCES);
    CHECK(errno_under(prog, [] { return ::personality(8); }) == EPERM);
    CHECK(errno_under(prog, [] { return ::personality(PER_LINUX); }) == 0);
    CHECK(errno_under(prog, [] { return ::getppid(); }) == 0);
    CHECK(errno_under(prog, [] { return ::getpgrp(); }) == 0);
    // An allow-by-default profile has no ENOSYS guard: unknown syscalls reach the kernel.
    CHECK(errno_under(prog, [] { return ::syscall(1000); }) == ENOSYS);
}

TEST_CASE("a profile that cannot be used is refused with its name and the entry") {
    auto msg = [](const char* json) {
        try {
            parse_seccomp_profile(json, "/etc/p.json");
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("(accepted)");
    };
    CHECK_THAT(msg(R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [)"),
               Catch::StartsWith("seccomp profile \"/etc/p.json\": decoding failed: "));
    CHECK(msg("[]") == "seccomp profile \"/etc/p.json\": decoding failed: expected a JSON object");
    CHECK_THAT(msg("{}"), Catch::Contains("\"defaultAction\" is missing"));
    CHECK(msg(R"({"defaultAction": "SCMP_ACT_NOPE"})") ==
          "seccomp profile \"/etc/p.json\": defaultAction: unknown action \"SCMP_ACT_NOPE\"");
    CHECK(msg(R"({"defaultAction": "SCMP_ACT_ALLOW",
                  "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"}]})") ==
          "seccomp profile \"/etc/p.json\": syscall \"mkdir\": unknown action \"SCMP_ACT_BOGUS\"");
    CHECK_THAT(msg(R"({"defaultAction": "SCMP_ACT_ALLOW",
                  "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]})"),
               Catch::Contains("SCMP_ACT_NOTIFY needs a seccomp agent"));
    CHECK(msg(R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"],
                  "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_X"}]}]})") ==
          "seccomp profile \"/etc/p.json\": syscall \"mkdir\": args: unknown operator "
          "\"SCMP_CMP_X\"");
    CHECK_THAT(msg(R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"],
                  "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]})"),
               Catch::Contains("index 6 is out of range"));
    CHECK_THAT(msg(R"({"defaultAction": "SCMP_ACT_ALLOW",
                  "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]})"),
               Catch::Contains("'name' and 'names' were specified"));
    CHECK_THAT(msg(R"({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
                  "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": null}]})"),
               Catch::Contains("'architectures' and 'archMap' were specified"));
    CHECK(msg(R"({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]})") ==
          "seccomp profile \"/etc/p.json\": unknown architecture \"SCMP_ARCH_VAX\"");
    CHECK(msg(R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {"names": []}})") ==
          "seccomp profile \"/etc/p.json\": \"syscalls\" must be a list");
    CHECK(msg(R"({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]})") ==
          "seccomp profile \"/etc/p.json\": unknown flag \"SECCOMP_FILTER_FLAG_NOPE\"");
    CHECK_THAT(msg(R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"],
                  "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "new"}}]})"),
               Catch::Contains("minKernel \"new\" is not a kernel version"));
    // Unknown fields are ignored, as Docker does.
    CHECK(msg(R"({"defaultAction": "SCMP_ACT_ALLOW", "comment": "x", "syscalls": []})") ==
          "(accepted)");
}

TEST_CASE("capabilities combine as Docker's --cap-add and --cap-drop") {
    const std::uint64_t chown = std::uint64_t{1} << CAP_CHOWN;
    const std::uint64_t admin = std::uint64_t{1} << CAP_SYS_ADMIN;
    Security s;
    CHECK(container_capabilities(s) == default_capabilities());
    s.cap_drop = {"chown"};
    CHECK(container_capabilities(s) == (default_capabilities() & ~chown));
    s.cap_drop = {"ALL"};
    s.cap_add = {"Cap_Chown"};
    CHECK(container_capabilities(s) == chown);
    s.cap_drop = {};
    s.cap_add = {"SYS_ADMIN"};
    CHECK(container_capabilities(s) == (default_capabilities() | admin));
    s.cap_add = {"all"};
    s.cap_drop = {"CAP_CHOWN"};
    Security privileged;
    privileged.privileged = true;
    std::uint64_t all = container_capabilities(privileged);
    CHECK((all & admin) != 0);
    CHECK(container_capabilities(s) == (all & ~chown));
    s.cap_add = {"CAP_NOPE"};
    CHECK_THROWS_WITH(container_capabilities(s), "unknown capability: \"CAP_NOPE\"");
    s.cap_add = {};
    s.cap_drop = {"nope"};
    CHECK_THROWS_AS(container_capabilities(s), UsageError);
}
