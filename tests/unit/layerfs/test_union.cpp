// Read-only unions: both drivers against the same layer stack.
#include "layerfs/mount.hpp"
#include "layerfs/overlay.hpp"
#include "tests/support/support.hpp"
#include "tests/unit/layerfs/stack.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/sha256.hpp"
#include "util/sys/syscalls.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <dirent.h>
#include <set>
#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

using namespace strata;
using layerfs::Driver;

namespace {

void check_read_only_semantics(const std::string& m) {
    // Whiteouts hide lower entries, by lookup and in listings.
    CHECK(test::lstat_errno(m + "/gone.txt") == ENOENT);
    CHECK(test::lstat_errno(m + "/whole") == ENOENT);
    CHECK(test::lstat_errno(m + "/whole/dir/x.txt") == ENOENT);
    CHECK(test::lstat_errno(m + "/dir/a.txt") == ENOENT);
    // Upper layers shadow lower ones; directories merge.
    CHECK(test::read_file(m + "/dir/b.txt") == "b from l2\n");
    CHECK(test::read_file(m + "/dir/c.txt") == "c\n");
    // An opaque directory hides the populated lower one.
    CHECK(test::lstat_errno(m + "/opq/hidden.txt") == ENOENT);
    CHECK(test::lstat_errno(m + "/opq/sub") == ENOENT);
    CHECK(test::read_file(m + "/opq/visible.txt") == "only this\n");
    // A directory replaced by a file and by a directory again.
    CHECK(fs::is_dir(m + "/flip"));
    CHECK(test::lstat_errno(m + "/flip/inside.txt") == ENOENT);
    CHECK(test::read_file(m + "/flip/again.txt") == "a dir again\n");
    // Hard links keep their count and share an inode number.
    struct stat a = fs::lstat(m + "/links/orig");
    struct stat b = fs::lstat(m + "/links/third");
    CHECK(a.st_nlink == 3);
    CHECK(a.st_ino == b.st_ino);
    // Symlinks resolve inside the union.
    CHECK(test::read_file(m + "/links/sym") == "ID=strata\n");
    // Overlay-private xattrs never show; user xattrs do.
    CHECK(::lgetxattr((m + "/opq").c_str(), "trusted.overlay.opaque", nullptr, 0) < 0);
    char v[16];
    CHECK(::lgetxattr((m + "/etc/os-release").c_str(), "user.origin", v, sizeof v) == 2);
    // Writes fail with EROFS.
    CHECK(::open((m + "/new").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644) < 0);
    CHECK(errno == EROFS);
    CHECK(::unlink((m + "/etc/motd").c_str()) < 0);
    CHECK(errno == EROFS);
    struct statvfs sv;
    CHECK(::statvfs(m.c_str(), &sv) == 0);
}

} // namespace

namespace {

void check_stack(test::Whiteouts form) {
    TempDir t;
    auto lowers = test::build_stack(t.path(), form);
    test::build_expected(t.path() + "/expected");
    fs::mkdirs(t.path() + "/m");
    auto h = layerfs::mount(test::spec_for(lowers, Driver::fuse), t.path() + "/m");
    CHECK(test::dump_tree(t.path() + "/m") == test::dump_tree(t.path() + "/expected"));
    check_read_only_semantics(t.path() + "/m");
}

} // namespace

TEST_CASE("the FUSE union shows a layer stack with OCI whiteouts as the merged tree", "[fuse]") {
    check_stack(test::Whiteouts::oci);
}

// Overlayfs's own whiteouts (0:0 character devices) need root to create:
// their own entry, reported Skipped without root.
TEST_CASE("the FUSE union shows a layer stack with 0:0 device whiteouts as the merged tree",
          "[root]") {
    REQUIRE(test::is_root());
    check_stack(test::Whiteouts::device);
}

TEST_CASE("the FUSE union understands OCI whiteouts and opaque markers", "[fuse]") {
    TempDir t;
    test::write_file(t.path() + "/l1/a/x", "x");
    test::write_file(t.path() + "/l1/a/y", "y");
    test::write_file(t.path() + "/l1/b/z", "z");
    test::write_file(t.path() + "/l1/c", "c");
    test::write_file(t.path() + "/l2/a/.wh.x", "");
    test::write_file(t.path() + "/l2/b/.wh..wh..opq", "");
    test::write_file(t.path() + "/l2/b/new", "n");
    test::write_file(t.path() + "/l2/.wh.c", "");
    fs::mkdirs(t.path() + "/m");
    auto h = layerfs::mount(test::spec_for({t.path() + "/l2", t.path() + "/l1"}, Driver::fuse),
                            t.path() + "/m");
    CHECK(test::dump_tree(t.path() + "/m") ==
          "/a d 0755 0:0\n"
          "/a/y f 0644 0:0 1 " +
              Sha256::hex_of("y") + "\n/b d 0755 0:0\n/b/new f 0644 0:0 1 " +
              Sha256::hex_of("n") + "\n");
}

TEST_CASE("inode numbers stay stable while the mount lives", "[fuse]") {
    TempDir t;
    auto lowers = test::build_stack(t.path());
    fs::mkdirs(t.path() + "/m");
    auto h = layerfs::mount(test::spec_for(lowers, Driver::fuse), t.path() + "/m");
    std::string f = t.path() + "/m/deep/d0/d1/l2.txt";
    ino_t before = fs::lstat(f).st_ino;
    ino_t dir_before = fs::lstat(t.path() + "/m/dir").st_ino;
    // Ask the kernel to drop its dentries and inodes, so the daemon forgets them.
    {
        UniqueFd fd = fs::open("/proc/sys/vm/drop_caches", O_WRONLY);
        fs::write_all(fd.get(), "2");
    }
    CHECK(fs::lstat(f).st_ino == before);
    CHECK(fs::lstat(t.path() + "/m/dir").st_ino == dir_before);
}

TEST_CASE("kernel overlay and the FUSE union show the same tree", "[overlay]") {
    TempDir t;
    auto lowers = test::build_stack(t.path());
    test::build_expected(t.path() + "/expected");
    fs::mkdirs(t.path() + "/k");
    fs::mkdirs(t.path() + "/f");
    auto k = layerfs::mount(test::spec_for(lowers, Driver::overlay), t.path() + "/k");
    auto f = layerfs::mount(test::spec_for(lowers, Driver::fuse), t.path() + "/f");
    std::string kernel = test::dump_tree(t.path() + "/k");
    CHECK(kernel == test::dump_tree(t.path() + "/f"));
    CHECK(kernel == test::dump_tree(t.path() + "/expected"));
    check_read_only_semantics(t.path() + "/k");
    check_read_only_semantics(t.path() + "/f");
}

TEST_CASE("kernel overlay mounts an image of 200 layers", "[overlay]") {
    TempDir t;
    std::vector<std::string> lowers;
    // Long layer paths: 200 of them overflow mount(2)'s one-page option
    // string, which the fallback must work around.
    std::string base = t.path() + "/snapshots-with-a-rather-long-directory-name";
    for (int i = 0; i < 200; ++i) {
        std::string l = base + "/layer-" + std::to_string(i) + "/fs";
        test::write_file(l + "/files/f" + std::to_string(i), std::to_string(i));
        test::write_file(l + "/shadowed", std::to_string(i));
        lowers.insert(lowers.begin(), l); // top-most first: the last one is on top
    }
    fs::mkdirs(t.path() + "/m");
    auto h = layerfs::mount(test::spec_for(lowers, Driver::overlay), t.path() + "/m");
    CHECK(layerfs::last_overlay_method() ==
          (sys::force_fallback() ? "mount(2) relative" : "fsconfig lowerdir+"));
    CHECK(test::read_file(t.path() + "/m/shadowed") == "199");
    CHECK(test::read_file(t.path() + "/m/files/f0") == "0");
    CHECK(test::read_file(t.path() + "/m/files/f199") == "199");
    h.unmount();
    CHECK_FALSE(fs::exists(t.path() + "/m/shadowed"));
}

TEST_CASE("kernel overlay with a short stack uses the page-sized option string in fallback",
          "[overlay]") {
    TempDir t;
    test::write_file(t.path() + "/a/x", "a");
    test::write_file(t.path() + "/b,with:odd/x", "b");
    test::write_file(t.path() + "/b,with:odd/y", "y");
    fs::mkdirs(t.path() + "/m");
    auto h = layerfs::mount(test::spec_for({t.path() + "/a", t.path() + "/b,with:odd"},
                                           Driver::overlay),
                            t.path() + "/m");
    CHECK(layerfs::last_overlay_method() ==
          (sys::force_fallback() ? "mount(2)" : "fsconfig lowerdir+"));
    CHECK(test::read_file(t.path() + "/m/x") == "a");
    CHECK(test::read_file(t.path() + "/m/y") == "y");
}

TEST_CASE("large merged directories list completely, with stable offsets", "[fuse]") {
    TempDir t;
    // 3000 names per layer with long names: many readdir buffers.
    std::string pad(120, 'n');
    for (int i = 0; i < 3000; ++i) {
        test::write_file(t.path() + "/l1/big/a" + std::to_string(i) + pad, "1");
        test::write_file(t.path() + "/l2/big/b" + std::to_string(i) + pad, "2");
    }
    for (int i = 0; i < 3000; i += 2) {
        test::make_whiteout(t.path() + "/l2/big/a" + std::to_string(i) + pad);
    }
    fs::mkdirs(t.path() + "/m");
    auto h = layerfs::mount(
        test::spec_for({t.path() + "/l2", t.path() + "/l1"}, Driver::fuse), t.path() + "/m");
    DIR* d = ::opendir((t.path() + "/m/big").c_str());
    REQUIRE(d != nullptr);
    std::vector<std::pair<long, std::string>> seen;
    while (auto* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") {
            seen.emplace_back(::telldir(d), n);
        }
    }
    CHECK(seen.size() == 4500);
    std::set<std::string> unique;
    for (const auto& s : seen) {
        unique.insert(s.second);
    }
    CHECK(unique.size() == 4500);
    CHECK(unique.count("a0" + pad) == 0);
    CHECK(unique.count("a1" + pad) == 1);
    // seekdir back to a saved position continues with the same entry.
    ::seekdir(d, seen[1999].first);
    auto* e = ::readdir(d);
    REQUIRE(e != nullptr);
    CHECK(std::string(e->d_name) == seen[2000].second);
    ::closedir(d);
}
