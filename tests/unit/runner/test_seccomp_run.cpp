// Containers under the runner's seccomp filter, capabilities and session
// keyring, for real: [root] cases, and one [userns] case for the rootless
// path (a filter loads without privilege once no_new_privs is set).
#include "fixture.hpp"
#include "runner/runner.hpp"
#include "util/child.hpp"
#include "util/error.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <grp.h>
#include <sys/prctl.h>
#include <unistd.h>

using namespace strata;
using namespace strata::test;

TEST_CASE("a container runs under Docker's seccomp filter unless unconfined", "[root]") {
    Rootfs root;
    auto o = run_captured(probe_spec(root, {"info"}));
    INFO(o.out << o.err);
    CHECK(o.get("Seccomp") == "2");
    CHECK(o.get("NoNewPrivs") == "1");
    // unconfined: no filter.
    auto spec = probe_spec(root, {"info"});
    spec.security.seccomp_profile = "unconfined";
    spec.argv = {"/bin/sh", "-c", "grep -q '^Seccomp:.*0' /proc/self/status"};
    CHECK(run_captured(spec).status.success());
    // --init: the init forks the command under the filter (clone3 is ENOSYS there).
    spec = probe_spec(root, {"info"});
    spec.init = true;
    o = run_captured(spec);
    CHECK(o.status.success());
    CHECK(o.get("Seccomp") == "2");
}

TEST_CASE("privileged: every capability and no seccomp filter", "[root]") {
    Rootfs root;
    auto spec = probe_spec(root, {"info"});
    spec.security.privileged = true;
    auto o = run_captured(spec);
    INFO(o.out << o.err);
    CHECK(o.get("Seccomp") == "0");
    char want[32];
    std::uint64_t all = runner::container_capabilities(spec.security);
    std::snprintf(want, sizeof want, "%016llx", static_cast<unsigned long long>(all));
    CHECK(o.get("CapEff") == want);
    CHECK(o.get("CapBnd") == want);
    spec.security = {};
    spec.security.cap_drop = {"ALL"};
    o = run_captured(spec);
    CHECK(o.get("CapEff") == "0000000000000000");
    CHECK(o.get("CapBnd") == "0000000000000000");
}

TEST_CASE("a seccomp profile that cannot be used stops the container with exit 125", "[root]") {
    Rootfs root;
    auto spec = probe_spec(root, {"info"});
    spec.security.seccomp_profile = R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [)";
    spec.security.seccomp_profile_source = "/etc/broken.json";
    try {
        runner::run(spec);
        FAIL("a broken profile was accepted");
    } catch (const runner::StartError& e) {
        CHECK(e.exit_code() == 125);
        CHECK_THAT(e.what(), Catch::StartsWith("seccomp profile \"/etc/broken.json\": decoding "
                                               "failed"));
    }
    // A profile that kills on execve: the filter is loaded before exec.
    spec.security.seccomp_profile =
        R"({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]})";
    try {
        runner::run(spec);
        FAIL("exec under a profile that forbids it succeeded");
    } catch (const runner::StartError& e) {
        CHECK(e.exit_code() == 126);
    }
}

TEST_CASE("without root, the container still gets the seccomp filter", "[userns]") {
    Rootfs root;
    Child c = Child::fork_fn([&]() -> int {
        if (::getuid() == 0 &&
            (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
             ::setresuid(65534, 65534, 65534) != 0)) {
            return 10;
        }
        ::prctl(PR_SET_DUMPABLE, 1);
        try {
            auto o = run_captured(probe_spec(root, {"info"}));
            if (!o.status.success()) {
                return 11;
            }
            return o.get("Seccomp") == "2" ? 0 : 12;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "rootless run failed: %s\n", e.what());
            return 20;
        }
    });
    CHECK(c.wait().code() == 0);
}
