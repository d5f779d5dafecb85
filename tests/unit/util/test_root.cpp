#include "tests/support/support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/root.hpp"
#include "util/sys/syscalls.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <unistd.h>

using namespace strata;

namespace {
// The confinement checks. Which path open_in_root takes (openat2 or the
// component-walking fallback) is fixed for the process by
// STRATA_FORCE_FALLBACK at start-up: the fallback case is its own CTest entry
// (util.[fallback]) that sets it in the environment.
void check_confinement() {
    TempDir outside;
    test::write_file(outside.path() + "/secret", "host");
    TempDir root;
    test::write_file(root.path() + "/etc/passwd", "inside");
    REQUIRE(::symlink("/etc/passwd", (root.path() + "/abs").c_str()) == 0);
    REQUIRE(::symlink("../../../../../../../../../../etc/passwd", (root.path() + "/rel").c_str()) == 0);
    REQUIRE(::symlink(outside.path().c_str(), (root.path() + "/escape").c_str()) == 0);
    UniqueFd rootfd = fs::open_dir(root.path());

    auto read_via = [&](const std::string& p) {
        UniqueFd fd = open_in_root(rootfd.get(), p, O_RDONLY);
        return fs::read_fd(fd.get());
    };
    CHECK(read_via("/etc/passwd") == "inside");
    CHECK(read_via("abs") == "inside");
    CHECK(read_via("rel") == "inside");
    CHECK(read_via("../../../etc/passwd") == "inside");
    // "escape" points to a host directory path that does not exist in the root.
    CHECK_THROWS_AS(read_via("escape/secret"), SysError);

    // Creating through a symlinked directory stays inside the root.
    UniqueFd dir = mkdirs_in_root(rootfd.get(), "escape/sub");
    CHECK(fs::is_dir(root.path() + outside.path() + "/sub"));
    CHECK_FALSE(fs::exists(outside.path() + "/sub"));
}
} // namespace

TEST_CASE("open_in_root keeps every path inside the root (openat2)") {
    REQUIRE_FALSE(sys::force_fallback());
    // openat2 is there (Linux 5.6+), so open_in_root uses it.
    UniqueFd self = fs::open_dir("/");
    int r = sys::openat2_raw(self.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0);
    REQUIRE(r >= 0);
    ::close(r);
    check_confinement();
}

// Hidden: runs only as util.[fallback], with STRATA_FORCE_FALLBACK=1.
TEST_CASE("open_in_root keeps every path inside the root (fallback walk)", "[.fallback]") {
    REQUIRE(sys::force_fallback());
    UniqueFd self = fs::open_dir("/");
    CHECK(sys::openat2_raw(self.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0) ==
          -ENOSYS);
    check_confinement();
}

TEST_CASE("clean_path follows Go's filepath.Clean") {
    CHECK(clean_path("/a/../../b/./c//") == "/b/c");
    CHECK(clean_path("a/../..") == "..");
    CHECK(clean_path("") == ".");
    CHECK(clean_path("/..") == "/");
}
