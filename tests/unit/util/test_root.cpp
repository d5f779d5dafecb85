#include "tests/support/support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/root.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fcntl.h>
#include <unistd.h>

using namespace strata;

namespace {
// Runs the checks with openat2 and with the component-walking fallback.
void check_confinement(bool fallback) {
    if (fallback) {
        ::setenv("STRATA_FORCE_FALLBACK", "1", 1);
    }
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
    ::unsetenv("STRATA_FORCE_FALLBACK");
}
} // namespace

TEST_CASE("open_in_root keeps every path inside the root (openat2)") { check_confinement(false); }

TEST_CASE("open_in_root keeps every path inside the root (fallback walk)") {
    check_confinement(true);
}

TEST_CASE("clean_path follows Go's filepath.Clean") {
    CHECK(clean_path("/a/../../b/./c//") == "/b/c");
    CHECK(clean_path("a/../..") == "..");
    CHECK(clean_path("") == ".");
    CHECK(clean_path("/..") == "/");
}
