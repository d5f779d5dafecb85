// Writable unions (an upper + work directory), in the spirit of the
// union-mount test suites for overlayfs: open, create, truncate, unlink,
// rmdir, rmtree, hard links, symlinks, renames of files and of populated
// directories across layers. The same cases run on both drivers.
#include "layerfs/mount.hpp"
#include "tests/support/support.hpp"
#include "tests/unit/layerfs/stack.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <regex>
#include <sstream>
#include <unistd.h>

using namespace strata;
using layerfs::Driver;

namespace {

std::string lower_snapshot(const std::vector<std::string>& lowers) {
    std::string out;
    for (const auto& l : lowers) {
        out += test::dump_tree(l);
    }
    return out;
}

// overlayfs records where a copied-up file came from (origin) and marks
// directories that hold such files (impure): bookkeeping, not content.
std::string without_overlay_bookkeeping(const std::string& dump) {
    static const std::regex re(" x:trusted\\.overlay\\.(origin|impure)=.*?(?= x:|$)");
    std::istringstream in(dump);
    std::string line, out;
    while (std::getline(in, line)) {
        out += std::regex_replace(line, re, "") + "\n";
    }
    return out;
}

struct Writable {
    TempDir t;
    std::vector<std::string> lowers;
    std::string m, upper;
    std::string lowers_before;
    layerfs::MountHandle h;

    explicit Writable(Driver d) {
        lowers = test::build_stack(t.path());
        lowers_before = lower_snapshot(lowers);
        m = t.path() + "/m";
        upper = t.path() + "/upper";
        fs::mkdirs(m);
        fs::mkdirs(upper);
        fs::mkdirs(t.path() + "/work");
        h = layerfs::mount(test::spec_for(lowers, d, upper, t.path() + "/work"), m);
    }
};

void run_cases(Driver d) {
    Writable w(d);
    const std::string& m = w.m;

    SECTION("open for writing copies the file up with its metadata") {
        std::string f = m + "/etc/os-release";
        struct stat before = fs::lstat(f);
        {
            UniqueFd fd = fs::open(f, O_WRONLY | O_APPEND);
            fs::write_all(fd.get(), "VERSION=1\n");
        }
        CHECK(test::read_file(f) == "ID=strata\nVERSION=1\n");
        struct stat after = fs::lstat(f);
        CHECK(after.st_mode == before.st_mode);
        CHECK(after.st_uid == before.st_uid);
        char v[16];
        CHECK(::lgetxattr(f.c_str(), "user.origin", v, sizeof v) == 2);
        CHECK(test::read_file(w.upper + "/etc/os-release") == "ID=strata\nVERSION=1\n");
        // The mode of a copied-up file without write permission for others stays.
        std::string s = m + "/secret";
        {
            UniqueFd fd = fs::open(s, O_RDWR);
            fs::write_all(fd.get(), "S");
        }
        CHECK((fs::lstat(w.upper + "/secret").st_mode & 07777) == 0600);
    }
    SECTION("create, read back, truncate") {
        test::write_file(m + "/dir/new.txt", "fresh");
        CHECK(test::read_file(m + "/dir/new.txt") == "fresh");
        CHECK(::truncate((m + "/dir/b.txt").c_str(), 3) == 0);
        CHECK(test::read_file(m + "/dir/b.txt") == "b f");
        CHECK(::truncate((m + "/bin/tool").c_str(), 0) == 0);
        CHECK(fs::lstat(m + "/bin/tool").st_size == 0);
        UniqueFd fd = fs::open(m + "/etc/passwd", O_WRONLY | O_TRUNC);
        fd.close();
        CHECK(test::read_file(m + "/etc/passwd").empty());
        CHECK((fs::lstat(m + "/bin/tool").st_mode & 0777) == 0755);
    }
    SECTION("unlink of lower files leaves whiteouts; the name can be reused") {
        CHECK(::unlink((m + "/dir/b.txt").c_str()) == 0);
        CHECK(test::lstat_errno(m + "/dir/b.txt") == ENOENT);
        CHECK(test::dump_tree(m + "/dir").find("b.txt") == std::string::npos);
        test::write_file(m + "/dir/b.txt", "again");
        CHECK(test::read_file(m + "/dir/b.txt") == "again");
        CHECK(::unlink((m + "/links/sym").c_str()) == 0);
        CHECK(test::lstat_errno(m + "/links/sym") == ENOENT);
    }
    SECTION("rmdir of an empty lower dir and rmtree of a populated merged dir") {
        CHECK(::rmdir((m + "/empty").c_str()) == 0);
        CHECK(test::lstat_errno(m + "/empty") == ENOENT);
        CHECK(::rmdir((m + "/dir").c_str()) < 0);
        CHECK(errno == ENOTEMPTY);
        fs::remove_all(m + "/deep");
        CHECK(test::lstat_errno(m + "/deep") == ENOENT);
        // A new directory of that name starts empty: nothing below shows through.
        fs::mkdirs(m + "/deep");
        CHECK(test::dump_tree(m + "/deep").empty());
        fs::remove_all(m + "/dir");
        CHECK(test::lstat_errno(m + "/dir") == ENOENT);
    }
    SECTION("a merged dir emptied name by name can be removed, and made again empty") {
        // dir: a.txt (whited out in l3), b.txt (l1 and l2), c.txt (l2).
        CHECK(::unlink((m + "/dir/b.txt").c_str()) == 0);
        CHECK(::rmdir((m + "/dir").c_str()) < 0);
        CHECK(errno == ENOTEMPTY);
        CHECK(::unlink((m + "/dir/c.txt").c_str()) == 0);
        CHECK(test::dump_tree(m + "/dir").empty());
        CHECK(::rmdir((m + "/dir").c_str()) == 0); // only whiteouts were left
        CHECK(test::lstat_errno(m + "/dir") == ENOENT);
        CHECK(::mkdir((m + "/dir").c_str(), 0750) == 0);
        CHECK(test::dump_tree(m + "/dir").empty());
        CHECK((fs::lstat(m + "/dir").st_mode & 07777) == 0750);
    }
    SECTION("deleted names are reused: O_EXCL create, mkdir over a file, a file over a dir") {
        CHECK(::unlink((m + "/etc/motd").c_str()) == 0);
        int fd = ::open((m + "/etc/motd").c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0640);
        CHECK(fd >= 0);
        if (fd >= 0) {
            ::close(fd);
        }
        CHECK(test::read_file(m + "/etc/motd").empty());
        CHECK(::open((m + "/etc/motd").c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0640) < 0);
        CHECK(errno == EEXIST);
        // A lower file replaced by a directory, and back.
        CHECK(::unlink((m + "/etc/passwd").c_str()) == 0);
        CHECK(::mkdir((m + "/etc/passwd").c_str(), 0755) == 0);
        CHECK(S_ISDIR(fs::lstat(m + "/etc/passwd").st_mode));
        CHECK(test::dump_tree(m + "/etc/passwd").empty());
        CHECK(::rmdir((m + "/etc/passwd").c_str()) == 0);
        test::write_file(m + "/etc/passwd", "new\n");
        CHECK(test::read_file(m + "/etc/passwd") == "new\n");
        // A merged lower directory replaced by a file, and back.
        fs::remove_all(m + "/flip");
        test::write_file(m + "/flip", "a file now\n");
        CHECK(test::read_file(m + "/flip") == "a file now\n");
        CHECK(::unlink((m + "/flip").c_str()) == 0);
        CHECK(::mkdir((m + "/flip").c_str(), 0755) == 0);
        CHECK(test::dump_tree(m + "/flip").empty());
    }
    SECTION("hard links keep their link count") {
        CHECK(::link((m + "/etc/motd").c_str(), (m + "/etc/motd2").c_str()) == 0);
        CHECK(fs::lstat(m + "/etc/motd").st_nlink == 2);
        CHECK(fs::lstat(m + "/etc/motd2").st_nlink == 2);
        CHECK(fs::lstat(m + "/etc/motd").st_ino == fs::lstat(m + "/etc/motd2").st_ino);
        test::write_file(m + "/n1", "n");
        CHECK(::link((m + "/n1").c_str(), (m + "/n2").c_str()) == 0);
        {
            UniqueFd fd = fs::open(m + "/n2", O_WRONLY | O_APPEND);
            fs::write_all(fd.get(), "2");
        }
        CHECK(test::read_file(m + "/n1") == "n2");
        CHECK(::unlink((m + "/n1").c_str()) == 0);
        CHECK(fs::lstat(m + "/n2").st_nlink == 1);
    }
    SECTION("symlinks: create, read, chmod through") {
        CHECK(::symlink("dir/c.txt", (m + "/to-c").c_str()) == 0);
        CHECK(test::read_file(m + "/to-c") == "c\n");
        char buf[64];
        ssize_t n = ::readlink((m + "/to-c").c_str(), buf, sizeof buf);
        CHECK(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0) == "dir/c.txt");
        CHECK(::chmod((m + "/links/sym").c_str(), 0600) == 0); // follows to etc/os-release
        CHECK((fs::lstat(m + "/etc/os-release").st_mode & 0777) == 0600);
    }
    SECTION("rename of files across layers, over existing files, with NOREPLACE") {
        CHECK(::rename((m + "/dir/c.txt").c_str(), (m + "/etc/c.txt").c_str()) == 0);
        CHECK(test::lstat_errno(m + "/dir/c.txt") == ENOENT);
        CHECK(test::read_file(m + "/etc/c.txt") == "c\n");
        CHECK(::rename((m + "/etc/motd").c_str(), (m + "/dir/b.txt").c_str()) == 0);
        CHECK(test::read_file(m + "/dir/b.txt") == "hello\n");
        CHECK(test::lstat_errno(m + "/etc/motd") == ENOENT);
        CHECK(::renameat2(AT_FDCWD, (m + "/etc/passwd").c_str(), AT_FDCWD,
                          (m + "/dir/b.txt").c_str(), RENAME_NOREPLACE) < 0);
        CHECK(errno == EEXIST);
        // Back to a name that has a whiteout.
        CHECK(::rename((m + "/etc/c.txt").c_str(), (m + "/dir/c.txt").c_str()) == 0);
        CHECK(test::read_file(m + "/dir/c.txt") == "c\n");
    }
    SECTION("rename and unlink of single names of a lower hard link") {
        CHECK(test::read_file(m + "/links/second") == "hard linked\n"); // known to the kernel
        CHECK(::rename((m + "/links/second").c_str(), (m + "/links/moved").c_str()) == 0);
        CHECK(test::lstat_errno(m + "/links/second") == ENOENT);
        CHECK(test::read_file(m + "/links/moved") == "hard linked\n");
        CHECK(test::read_file(m + "/links/orig") == "hard linked\n");
        CHECK(::unlink((m + "/links/orig").c_str()) == 0);
        CHECK(test::lstat_errno(m + "/links/orig") == ENOENT);
        CHECK(test::read_file(m + "/links/third") == "hard linked\n");
    }
    SECTION("rename of populated directories across layers") {
        if (d == Driver::overlay) {
            // redirect_dir=off (a self-contained upper for commits): the
            // kernel refuses, and mv falls back to copying. The FUSE driver
            // copies the tree up itself.
            CHECK(::rename((m + "/deep").c_str(), (m + "/moved").c_str()) < 0);
            CHECK(errno == EXDEV);
            return;
        }
        std::string before = test::dump_tree(m + "/deep");
        CHECK(::rename((m + "/deep").c_str(), (m + "/moved").c_str()) == 0);
        CHECK(test::lstat_errno(m + "/deep") == ENOENT);
        CHECK(test::dump_tree(m + "/moved") == before);
        // Into a subdirectory, over an empty directory, and back.
        std::string dir_before = test::dump_tree(m + "/dir");
        CHECK(::rename((m + "/dir").c_str(), (m + "/empty").c_str()) == 0);
        CHECK(test::dump_tree(m + "/empty") == dir_before);
        CHECK(::rename((m + "/empty").c_str(), (m + "/moved/d0/dir").c_str()) == 0);
        CHECK(test::dump_tree(m + "/moved/d0/dir") == dir_before);
        CHECK(::rename((m + "/moved").c_str(), (m + "/deep").c_str()) == 0);
        CHECK(test::read_file(m + "/deep/d0/dir/c.txt") == "c\n");
        CHECK(test::read_file(m + "/deep/d0/d1/l2.txt") == "merged into the deep tree\n");
        // A non-empty target directory is refused.
        CHECK(::rename((m + "/bin").c_str(), (m + "/etc").c_str()) < 0);
        CHECK(errno == ENOTEMPTY);
    }
    SECTION("setattr: chmod, chown, utimens") {
        CHECK(::chmod((m + "/dir/b.txt").c_str(), 0640) == 0);
        CHECK((fs::lstat(m + "/dir/b.txt").st_mode & 07777) == 0640);
        CHECK(::chown((m + "/dir/b.txt").c_str(), 1234, 5678) == 0);
        CHECK(fs::lstat(m + "/dir/b.txt").st_uid == 1234);
        struct timespec ts[2] = {{1000000000, 0}, {1000000001, 0}};
        CHECK(::utimensat(AT_FDCWD, (m + "/dir").c_str(), ts, 0) == 0);
        CHECK(fs::lstat(m + "/dir").st_mtim.tv_sec == 1000000001);
        CHECK(test::read_file(m + "/dir/b.txt") == "b from l2\n");
    }
    SECTION("xattrs can be set and removed; overlay's own stay hidden") {
        std::string f = m + "/dir/c.txt";
        CHECK(::lsetxattr(f.c_str(), "user.k", "v", 1, 0) == 0);
        char v[8];
        CHECK(::lgetxattr(f.c_str(), "user.k", v, sizeof v) == 1);
        CHECK(::lremovexattr(f.c_str(), "user.k") == 0);
        CHECK(::lgetxattr(f.c_str(), "user.k", v, sizeof v) < 0);
        if (d == Driver::fuse) {
            // overlay's own xattrs cannot be set or removed through the FUSE
            // union (as with fuse-overlayfs; kernel overlayfs 6.7+ escapes
            // them into trusted.overlay.overlay.*).
            errno = 0;
            CHECK(::lsetxattr(f.c_str(), "trusted.overlay.opaque", "y", 1, 0) < 0);
            CHECK(errno == EPERM);
            errno = 0;
            CHECK(::lremovexattr(f.c_str(), "trusted.overlay.opaque") < 0);
            CHECK(errno == ENODATA);
        }
        fs::remove_all(m + "/opq");
        fs::mkdirs(m + "/opq");
        CHECK(::lgetxattr((m + "/opq").c_str(), "trusted.overlay.opaque", v, sizeof v) < 0);
        CHECK(test::dump_tree(m + "/opq").empty());
    }
    SECTION("mkfifo and mknod") {
        CHECK(::mkfifo((m + "/dir/fifo").c_str(), 0600) == 0);
        CHECK(S_ISFIFO(fs::lstat(m + "/dir/fifo").st_mode));
    }
    // The lower layers never change.
    w.h.unmount();
    CHECK(lower_snapshot(w.lowers) == w.lowers_before);
}

} // namespace

TEST_CASE("writable FUSE union: union-mount test cases", "[fuse]") { run_cases(Driver::fuse); }

TEST_CASE("writable kernel overlay: the same union-mount test cases", "[overlay]") {
    run_cases(Driver::overlay);
}

TEST_CASE("the upper directory of both drivers holds the same diff", "[overlay]") {
    std::string diffs[2];
    int i = 0;
    for (Driver d : {Driver::overlay, Driver::fuse}) {
        Writable w(d);
        const std::string& m = w.m;
        test::write_file(m + "/dir/new.txt", "new");
        CHECK(::unlink((m + "/dir/b.txt").c_str()) == 0);
        fs::remove_all(m + "/opq");
        fs::mkdirs(m + "/opq");
        {
            UniqueFd fd = fs::open(m + "/etc/motd", O_WRONLY | O_APPEND);
            fs::write_all(fd.get(), "more\n");
        }
        w.h.unmount();
        diffs[i++] = without_overlay_bookkeeping(test::dump_tree(w.upper));
    }
    CHECK(diffs[0] == diffs[1]);
}

TEST_CASE("a removed directory held open cannot be used to write through a new symlink",
          "[fuse]") {
    Writable w(Driver::fuse);
    const std::string& m = w.m;
    std::string outside = w.t.path() + "/outside";
    fs::mkdirs(outside + "/sub");
    fs::mkdirs(m + "/victim/sub");
    UniqueFd held = fs::open(m + "/victim/sub", O_RDONLY | O_DIRECTORY);
    fs::remove_all(m + "/victim");
    // The upper now has a symlink where the directory was: were the held
    // directory resolved by its old path, writes would land in "outside".
    REQUIRE(::symlink(outside.c_str(), (m + "/victim").c_str()) == 0);
    int fd = ::openat(held.get(), "planted", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    CHECK(fd < 0);
    if (fd >= 0) {
        ::close(fd);
    }
    CHECK_FALSE(fs::exists(outside + "/sub/planted"));
    CHECK(::mkdirat(held.get(), "newdir", 0755) < 0);
    CHECK_FALSE(fs::exists(outside + "/sub/newdir"));
}
