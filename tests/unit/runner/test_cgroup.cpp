// The container's cgroup (runner/cgroup.hpp): Docker's device rules, the
// cgroup v2 device program, and, as root, real cgroups that refuse a device.
#include "fixture.hpp"
#include "runner/cgroup.hpp"
#include "runner/runner.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace strata;
using namespace strata::test;
using runner::DeviceRule;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

std::string unique_id() {
    return "test-" + std::to_string(::getpid()) + "-" + std::to_string(::time(nullptr));
}

// In a forked child: writes "0" to each procs fd (joins the cgroup), then
// opens path; exits with the open's errno (0 when it opened).
int open_in_cgroup(const runner::Cgroup& cg, const char* path, int flags) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        for (int fd : cg.procs_fds()) {
            if (::write(fd, "0", 1) != 1) {
                _exit(200);
            }
        }
        int fd = ::open(path, flags | O_CLOEXEC | O_NONBLOCK);
        _exit(fd >= 0 ? 0 : errno);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
}

} // namespace

TEST_CASE("Docker's device rules, in the v1 file syntax") {
    std::vector<std::string> texts;
    for (const auto& r : runner::default_device_rules()) {
        texts.push_back((r.allow ? "allow " : "deny ") + r.text());
    }
    CHECK(texts == std::vector<std::string>{"deny a *:* rwm", "allow c *:* m", "allow b *:* m",
                                            "allow c 1:3 rwm", "allow c 1:5 rwm", "allow c 1:7 rwm",
                                            "allow c 1:8 rwm", "allow c 1:9 rwm", "allow c 5:0 rwm",
                                            "allow c 5:1 rwm", "allow c 5:2 rwm",
                                            "allow c 136:* rwm", "allow c 10:200 rwm"});
}

TEST_CASE("device permissions are r, w and m, in Docker's order") {
    CHECK(runner::device_access("rwm") == "rwm");
    CHECK(runner::device_access("mr") == "rm");
    CHECK(runner::device_access("w") == "w");
    CHECK_THROWS_WITH(runner::device_access("rwx"), Catch::Contains("invalid device permissions"));
    CHECK_THROWS_AS(runner::device_access(""), UsageError);
}

TEST_CASE("the v2 device program tests the rules from the last one back, then denies") {
    auto insn = [](std::uint64_t w) {
        struct bpf_insn i;
        std::memcpy(&i, &w, sizeof i);
        return i;
    };
    // "Deny everything" last: the prologue (6) and r0 = 0; exit. The rules
    // before it are left out (the verifier refuses unreachable code).
    auto p = runner::device_filter_program({{'c', 1, 3, "rwm", true}, {'a', -1, -1, "rwm", false}});
    REQUIRE(p.size() == 6 + 2);
    CHECK(insn(p[6]).imm == 0);
    CHECK(insn(p[7]).code == (BPF_JMP | BPF_EXIT));
    // "c 1:3 rw": type, access (3), major, minor, then allow; every jump
    // lands on the next rule.
    p = runner::device_filter_program({{'c', 1, 3, "rw", true}});
    REQUIRE(p.size() == 6 + 6 + 2 + 2);
    CHECK(insn(p[6]).code == (BPF_JMP | BPF_JNE | BPF_K));
    CHECK(insn(p[6]).imm == BPF_DEVCG_DEV_CHAR);
    CHECK(insn(p[6]).off == 7);
    CHECK(insn(p[8]).imm == BPF_DEVCG_ACC_MKNOD); // the bits the rule does not grant
    CHECK(insn(p[10]).imm == 1);                  // major
    CHECK(insn(p[11]).imm == 3);                  // minor
    CHECK(insn(p[11]).off == 2);
    CHECK(insn(p[12]).imm == 1); // allow
}

TEST_CASE("the kernel's verifier accepts the device programs", "[root]") {
    auto rules = runner::default_device_rules();
    rules.push_back({'b', 7, -1, "r", true});
    CHECK(static_cast<bool>(runner::load_device_filter(rules)));
    CHECK(static_cast<bool>(runner::load_device_filter({{'a', -1, -1, "rwm", true}})));
}

TEST_CASE("a v1 device cgroup refuses every device but Docker's, and goes away", "[root]") {
    if (runner::cgroup_version() == runner::CgroupVersion::v2) {
        WARN("cgroup v2 host: the v1 case does not apply");
        return;
    }
    std::string id = unique_id();
    std::string dir;
    {
        auto cg = runner::Cgroup::create("strata-test", id);
        REQUIRE(cg.paths().size() == 1);
        dir = cg.paths()[0];
        CHECK(contains(dir, "/strata-test/" + id));
        cg.set_devices(runner::default_device_rules());
        std::string list = fs::read_file(dir + "/devices.list");
        CHECK(contains(list, "c 1:3 rwm"));
        CHECK(contains(list, "c 136:* rwm"));
        CHECK_FALSE(contains(list, "a *:* rwm"));
        CHECK(open_in_cgroup(cg, "/dev/null", O_RDWR) == 0);
        CHECK(open_in_cgroup(cg, "/dev/kmsg", O_RDONLY) == EPERM);
    }
    CHECK_FALSE(std::filesystem::exists(dir));
    ::rmdir(std::filesystem::path(dir).parent_path().c_str());
}

TEST_CASE("a v2 device program attached to a cgroup refuses the same devices", "[root]") {
    // A hybrid host has a cgroup2 tree at /sys/fs/cgroup/unified whose BPF
    // device programs apply as on a v2 host.
    std::string root = runner::cgroup_version() == runner::CgroupVersion::v2
                           ? "/sys/fs/cgroup"
                           : "/sys/fs/cgroup/unified";
    struct statfs sf {};
    if (::statfs(root.c_str(), &sf) != 0 || sf.f_type != CGROUP2_SUPER_MAGIC) {
        WARN("no cgroup2 tree on this host: the v2 program cannot be attached here");
        return;
    }
    std::string id = unique_id();
    std::string dir;
    {
        auto cg = runner::Cgroup::create_at(runner::CgroupVersion::v2, root, "strata-test", id, {});
        dir = cg.paths().at(0);
        cg.set_devices(runner::default_device_rules());
        CHECK(open_in_cgroup(cg, "/dev/null", O_RDWR) == 0);
        CHECK(open_in_cgroup(cg, "/dev/zero", O_RDONLY) == 0);
        CHECK(open_in_cgroup(cg, "/dev/kmsg", O_RDONLY) == EPERM);
    }
    CHECK_FALSE(std::filesystem::exists(dir));
    ::rmdir(std::filesystem::path(dir).parent_path().c_str());
}

TEST_CASE("a cgroup that cannot be made is an error naming its path", "[root]") {
    CHECK_THROWS_WITH(runner::Cgroup::create_at(runner::CgroupVersion::v1, "/nonexistent-cgroup",
                                                "strata", "x", {"devices"}),
                      Catch::Contains("/nonexistent-cgroup/devices/strata"));
}
