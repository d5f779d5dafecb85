#include "tests/support/support.hpp"
#include "util/atomic_file.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <unistd.h>

using namespace strata;

TEST_CASE("TempDir removes itself with its contents, including unwritable directories") {
    std::string path;
    {
        TempDir t;
        path = t.path();
        test::write_file(path + "/a/b/c.txt", "x");
        REQUIRE(::chmod((path + "/a/b").c_str(), 0500) == 0);
        REQUIRE(::symlink("/etc", (path + "/link").c_str()) == 0);
    }
    CHECK_FALSE(fs::exists(path));
    CHECK(fs::exists("/etc/passwd"));
}

TEST_CASE("AtomicFile publishes only on commit") {
    TempDir t;
    std::string dest = t.path() + "/out";
    {
        AtomicFile f(dest);
        f.write("partial");
    }
    CHECK_FALSE(fs::exists(dest));
    {
        AtomicFile f(dest);
        f.write("done");
        CHECK(f.commit());
    }
    CHECK(fs::read_file(dest) == "done");
    AtomicFile again(dest);
    again.write("other");
    CHECK_FALSE(again.commit(true));
    CHECK(fs::read_file(dest) == "done");
}

TEST_CASE("read_file enforces its size limit and names the file") {
    TempDir t;
    test::write_file(t.path() + "/big", std::string(100, 'x'));
    CHECK(fs::read_file(t.path() + "/big", 100).size() == 100);
    CHECK_THROWS_WITH(fs::read_file(t.path() + "/big", 99),
                      Catch::Contains(t.path() + "/big") && Catch::Contains("limit"));
}

TEST_CASE("path helpers split and join like their POSIX namesakes") {
    CHECK(fs::dirname("/a/b/c") == "/a/b");
    CHECK(fs::dirname("c") == ".");
    CHECK(fs::dirname("/c") == "/");
    CHECK(fs::basename("/a/b/c/") == "c");
    CHECK(fs::join("/a/", "/b") == "/a/b");
}
