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

TEST_CASE("read and write errors name the file they work on") {
    TempDir t;
    UniqueFd dir = fs::open_dir(t.path());
    // read(2) of a directory fails with EISDIR; write(2) of a read-only fd with EBADF.
    try {
        fs::read_fd(dir.get(), t.path());
        FAIL("no exception");
    } catch (const SysError& e) {
        CHECK(e.op() == "read");
        CHECK(e.path() == t.path());
        CHECK(e.error_code() == EISDIR);
        CHECK(std::string(e.what()) == "read " + quote_path(t.path()) + ": Is a directory");
    }
    char c;
    CHECK_THROWS_WITH(fs::read_full(dir.get(), "the tree", &c, 1),
                      "read \"the tree\": Is a directory");
    test::write_file(t.path() + "/f", "x");
    UniqueFd ro = fs::open(t.path() + "/f", O_RDONLY);
    CHECK_THROWS_WITH(fs::write_all(ro.get(), "the file f", std::string_view("y")),
                      "write \"the file f\": Bad file descriptor");
    // Without a name, the fd's /proc/self/fd link names it.
    CHECK_THROWS_WITH(fs::write_all(ro.get(), std::string_view("y")),
                      "write " + quote_path(t.path() + "/f") + ": Bad file descriptor");
    CHECK_THROWS_WITH(fs::read_file(t.path() + "/f", 0),
                      quote_path(t.path() + "/f") + ": file is larger than the limit of 0 bytes");
}

TEST_CASE("read_each hands over every byte in pieces and returns the total") {
    TempDir t;
    std::string data(100000, 'a');
    data[99999] = 'z';
    test::write_file(t.path() + "/f", data);
    UniqueFd fd = fs::open(t.path() + "/f", O_RDONLY);
    std::string got;
    std::size_t pieces = 0;
    std::uint64_t total = fs::read_each(fd.get(), "f", 4096, [&](const char* p, std::size_t n) {
        CHECK(n <= 4096);
        got.append(p, n);
        ++pieces;
    });
    CHECK(total == data.size());
    CHECK(got == data);
    CHECK(pieces >= 25);
}
