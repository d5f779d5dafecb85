#include "builder/copy.hpp"
#include "tests/support/support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <cstring>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

using namespace strata;
using namespace strata::builder;

namespace {

struct Fixture {
    TempDir ctx;
    TempDir root;
    UniqueFd ctxfd;
    UniqueFd rootfd;
    Fixture() {
        test::write_file(ctx.path() + "/a.txt", "A", 0644);
        test::write_file(ctx.path() + "/b.txt", "BB", 0600);
        test::write_file(ctx.path() + "/run.sh", "#!/bin/sh\n", 0755);
        test::write_file(ctx.path() + "/dir/x", "X");
        test::write_file(ctx.path() + "/dir/sub/y", "Y");
        REQUIRE(::symlink("x", (ctx.path() + "/dir/link").c_str()) == 0);
        ctxfd = fs::open_dir(ctx.path());
        rootfd = fs::open_dir(root.path());
    }
    CopyStats copy(std::vector<std::string> src, const std::string& dest, const CopyOptions& o = {}) {
        return copy_into(ctxfd.get(), src, rootfd.get(), dest, o);
    }
    std::string dump() { return test::dump_tree(root.path()); }
};

} // namespace

TEST_CASE("a file copied to a path ending in / goes into that directory") {
    Fixture f;
    f.copy({"a.txt"}, "/app/");
    CHECK(fs::read_file(f.root.path() + "/app/a.txt") == "A");
    CHECK((fs::lstat(f.root.path() + "/app").st_mode & 07777) == 0755);
}

TEST_CASE("a single file copied to a path without a slash becomes that file") {
    Fixture f;
    f.copy({"b.txt"}, "/etc/config");
    CHECK(fs::read_file(f.root.path() + "/etc/config") == "BB");
    CHECK((fs::lstat(f.root.path() + "/etc/config").st_mode & 07777) == 0600);
}

TEST_CASE("a directory source copies its contents, symlinks stay symlinks") {
    Fixture f;
    f.copy({"dir"}, "/opt");
    CHECK(fs::read_file(f.root.path() + "/opt/x") == "X");
    CHECK(fs::read_file(f.root.path() + "/opt/sub/y") == "Y");
    CHECK_FALSE(fs::exists(f.root.path() + "/opt/dir"));
    CHECK(S_ISLNK(fs::lstat(f.root.path() + "/opt/link").st_mode));
}

TEST_CASE("wildcards match per path component, several sources need a directory") {
    Fixture f;
    f.copy({"*.txt"}, "/w/");
    CHECK(fs::exists(f.root.path() + "/w/a.txt"));
    CHECK(fs::exists(f.root.path() + "/w/b.txt"));
    CHECK_FALSE(fs::exists(f.root.path() + "/w/run.sh"));
    CHECK_THROWS_WITH(f.copy({"a.txt", "b.txt"}, "/file"), Catch::Contains("must be a directory"));
    CHECK_THROWS_WITH(f.copy({"*.nothing"}, "/w/"), Catch::Contains("*.nothing"));
}

TEST_CASE("a missing source is named in the error") {
    Fixture f;
    CHECK_THROWS_WITH(f.copy({"missing.txt"}, "/"), "\"/missing.txt\": not found");
}

TEST_CASE("a symlink source escaping the context resolves inside it, never on the host") {
    Fixture f;
    REQUIRE(::symlink("/etc/passwd", (f.ctx.path() + "/evil").c_str()) == 0);
    REQUIRE(::symlink("../../../../../../etc/passwd", (f.ctx.path() + "/evil2").c_str()) == 0);
    CHECK_THROWS_WITH(f.copy({"evil"}, "/x"), Catch::Contains("not found"));
    CHECK_THROWS_WITH(f.copy({"evil2"}, "/x"), Catch::Contains("not found"));
    CHECK_FALSE(fs::exists(f.root.path() + "/x"));
    // A link that stays inside the context is followed.
    REQUIRE(::symlink("a.txt", (f.ctx.path() + "/good").c_str()) == 0);
    f.copy({"good"}, "/g");
    CHECK(fs::read_file(f.root.path() + "/g") == "A");
}

TEST_CASE("writing through a symlinked destination directory stays inside the root") {
    Fixture f;
    TempDir outside;
    REQUIRE(::symlink(outside.path().c_str(), (f.root.path() + "/out").c_str()) == 0);
    f.copy({"a.txt"}, "/out/");
    CHECK_FALSE(fs::exists(outside.path() + "/a.txt"));
    CHECK(fs::exists(f.root.path() + outside.path() + "/a.txt"));
}

TEST_CASE("excluded files never reach the destination") {
    Fixture f;
    CopyOptions o;
    o.excluded = [](const std::string& rel, bool) { return rel == "dir/sub" || rel == "b.txt"; };
    f.copy({"."}, "/all/", o);
    CHECK(fs::exists(f.root.path() + "/all/a.txt"));
    CHECK_FALSE(fs::exists(f.root.path() + "/all/b.txt"));
    CHECK_FALSE(fs::exists(f.root.path() + "/all/dir/sub"));
    CHECK_THROWS_WITH(f.copy({"b.txt"}, "/b", o), Catch::Contains("not found"));
}

TEST_CASE("chmod and parents options: the mode is applied and source paths are kept") {
    Fixture f;
    CopyOptions o;
    o.chmod = ChmodSpec::parse("0640");
    f.copy({"a.txt"}, "/m/", o);
    CHECK((fs::lstat(f.root.path() + "/m/a.txt").st_mode & 07777) == 0640);
    CopyOptions p;
    p.parents = true;
    f.copy({"dir/sub/y"}, "/p/", p);
    CHECK(fs::read_file(f.root.path() + "/p/dir/sub/y") == "Y");
}

TEST_CASE("COPY --parents: ** matches any number of directories, none included") {
    Fixture f;
    test::write_file(f.ctx.path() + "/src/a.txt", "a");
    test::write_file(f.ctx.path() + "/src/x/b.txt", "b");
    test::write_file(f.ctx.path() + "/src/x/y/c.txt", "c");
    test::write_file(f.ctx.path() + "/src/x/y/skip.md", "s");
    CopyOptions p;
    p.parents = true;
    f.copy({"./src/**/*.txt"}, "/parents/", p);
    CHECK(fs::read_file(f.root.path() + "/parents/src/a.txt") == "a");
    CHECK(fs::read_file(f.root.path() + "/parents/src/x/b.txt") == "b");
    CHECK(fs::read_file(f.root.path() + "/parents/src/x/y/c.txt") == "c");
    CHECK_FALSE(fs::exists(f.root.path() + "/parents/src/x/y/skip.md"));
    // Each match is copied once (also when several routes reach it).
    CHECK(expand_sources(f.ctxfd.get(), {"src/**/**/*.txt"}, p).size() == 3);
}

TEST_CASE("COPY --parents: the ./ pivot keeps the paths from the pivot on") {
    Fixture f;
    test::write_file(f.ctx.path() + "/x/y/a.txt", "a");
    test::write_file(f.ctx.path() + "/x/y/b.txt", "b");
    test::write_file(f.ctx.path() + "/src/x/deep/c.txt", "c");
    CopyOptions p;
    p.parents = true;
    f.copy({"./x/./y/*.txt"}, "/parents/", p);
    CHECK(fs::read_file(f.root.path() + "/parents/y/a.txt") == "a");
    CHECK(fs::read_file(f.root.path() + "/parents/y/b.txt") == "b");
    CHECK_FALSE(fs::exists(f.root.path() + "/parents/x"));
    f.copy({"./src/./x/**/*.txt"}, "/p2/", p);
    CHECK(fs::read_file(f.root.path() + "/p2/x/deep/c.txt") == "c");
    // A directory source at the pivot: its contents, under the kept path.
    f.copy({"/x/./y"}, "/p3/", p);
    CHECK(fs::read_file(f.root.path() + "/p3/y/a.txt") == "a");
}

TEST_CASE("hard links between copied files are kept") {
    Fixture f;
    REQUIRE(::link((f.ctx.path() + "/dir/x").c_str(), (f.ctx.path() + "/dir/x2").c_str()) == 0);
    f.copy({"dir"}, "/h");
    CHECK(fs::lstat(f.root.path() + "/h/x").st_ino == fs::lstat(f.root.path() + "/h/x2").st_ino);
}

TEST_CASE("the content hash changes with content and mode but not with mtime") {
    Fixture f;
    std::string h1 = hash_sources(f.ctxfd.get(), {"dir", "a.txt"}, {});
    struct timespec ts[2] = {{1000, 0}, {1000, 0}};
    REQUIRE(::utimensat(AT_FDCWD, (f.ctx.path() + "/a.txt").c_str(), ts, 0) == 0);
    CHECK(hash_sources(f.ctxfd.get(), {"dir", "a.txt"}, {}) == h1);
    test::write_file(f.ctx.path() + "/dir/sub/y", "Z");
    std::string h2 = hash_sources(f.ctxfd.get(), {"dir", "a.txt"}, {});
    CHECK(h2 != h1);
    REQUIRE(::chmod((f.ctx.path() + "/a.txt").c_str(), 0600) == 0);
    CHECK(hash_sources(f.ctxfd.get(), {"dir", "a.txt"}, {}) != h2);
}

TEST_CASE("path_match follows Go's filepath.Match") {
    CHECK(path_match("*.txt", "a.txt"));
    CHECK_FALSE(path_match("*.txt", "d/a.txt"));
    CHECK(path_match("a?c", "abc"));
    CHECK_FALSE(path_match("a?c", "a/c"));
    CHECK(path_match("[a-c]x", "bx"));
    CHECK_FALSE(path_match("[^a-c]x", "bx"));
    CHECK(path_match("\\*", "*"));
    CHECK(path_match("a*b*c", "axxbyyc"));
    CHECK_THROWS_WITH(path_match("[", "a"), Catch::Contains("syntax error in pattern"));
}

TEST_CASE("a copied file keeps its file capability and xattrs, --chown or not", "[root]") {
    Fixture f;
    std::string src = f.ctx.path() + "/ping";
    test::write_file(src, "binary", 0755);
    // cap_net_raw+ep (struct vfs_cap_data, revision 2, effective).
    const unsigned char cap[20] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    REQUIRE(::setxattr(src.c_str(), "security.capability", cap, sizeof cap, 0) == 0);
    REQUIRE(::setxattr(src.c_str(), "user.note", "n", 1, 0) == 0);
    auto check = [&](const std::string& dst, uid_t uid) {
        unsigned char got[64];
        ssize_t n = ::getxattr(dst.c_str(), "security.capability", got, sizeof got);
        REQUIRE(n == static_cast<ssize_t>(sizeof cap));
        CHECK(std::memcmp(got, cap, sizeof cap) == 0);
        CHECK(::getxattr(dst.c_str(), "user.note", got, sizeof got) == 1);
        CHECK(fs::lstat(dst).st_uid == uid);
    };
    f.copy({"ping"}, "/bin/ping");
    check(f.root.path() + "/bin/ping", 0);
    CopyOptions o;
    o.uid = 1000;
    o.gid = 1000;
    f.copy({"ping"}, "/usr/bin/ping", o);
    check(f.root.path() + "/usr/bin/ping", 1000);
}
