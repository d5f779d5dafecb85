#include "tests/unit/layerfs/stack.hpp"

#include "tests/support/support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <cerrno>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

namespace strata::test {

bool is_root() { return ::geteuid() == 0; }

Whiteouts native_whiteouts() { return is_root() ? Whiteouts::device : Whiteouts::oci; }

void make_whiteout(const std::string& path, Whiteouts form) {
    fs::mkdirs(fs::dirname(path));
    if (form == Whiteouts::device) {
        if (::mknod(path.c_str(), S_IFCHR | 0000, makedev(0, 0)) != 0) {
            throw_errno("mknod", path);
        }
        return;
    }
    write_file(fs::join(fs::dirname(path), ".wh." + fs::basename(path)), "");
}

void make_opaque(const std::string& dir) {
    fs::mkdirs(dir);
    const char* name = is_root() ? "trusted.overlay.opaque" : "user.overlay.opaque";
    if (::lsetxattr(dir.c_str(), name, "y", 1, 0) != 0) {
        throw_errno("lsetxattr", dir);
    }
}

namespace {
void deep(const std::string& base, int levels, const std::string& leaf) {
    std::string p = base;
    for (int i = 0; i < levels; ++i) {
        p += "/d" + std::to_string(i);
    }
    write_file(p + "/leaf.txt", leaf);
}

void symlink_at(const std::string& target, const std::string& path) {
    fs::mkdirs(fs::dirname(path));
    if (::symlink(target.c_str(), path.c_str()) != 0) {
        throw_errno("symlink", path);
    }
}

void hardlink(const std::string& from, const std::string& to) {
    if (::link(from.c_str(), to.c_str()) != 0) {
        throw_errno("link", to);
    }
}

void device(const std::string& path, mode_t mode, dev_t dev) {
    if (::mknod(path.c_str(), mode, dev) != 0) {
        throw_errno("mknod", path);
    }
}

void set_user_xattr(const std::string& path, const std::string& name, const std::string& v) {
    if (::lsetxattr(path.c_str(), name.c_str(), v.data(), v.size(), 0) != 0) {
        throw_errno("lsetxattr", path);
    }
}

// The parts of build_stack that look the same in every layer and in the
// expected tree.
void common_bottom(const std::string& l) {
    write_file(l + "/etc/os-release", "ID=strata\n");
    write_file(l + "/etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0644);
    write_file(l + "/bin/tool", "#!/bin/sh\necho tool\n", 0755);
    write_file(l + "/secret", "s", 0600);
    set_user_xattr(l + "/etc/os-release", "user.origin", "l1");
}
} // namespace

std::vector<std::string> build_stack(const std::string& root, Whiteouts form) {
    std::string l1 = root + "/l1", l2 = root + "/l2", l3 = root + "/l3";
    fs::mkdirs(l1);
    fs::mkdirs(l2);
    fs::mkdirs(l3);
    // l1 (bottom)
    common_bottom(l1);
    write_file(l1 + "/gone.txt", "deleted in l2\n");
    write_file(l1 + "/dir/a.txt", "a\n");
    write_file(l1 + "/dir/b.txt", "b from l1\n");
    write_file(l1 + "/opq/hidden.txt", "hidden by the opaque l3 dir\n");
    write_file(l1 + "/opq/sub/hidden2.txt", "also hidden\n");
    write_file(l1 + "/flip/inside.txt", "dir in l1, file in l2, dir in l3\n");
    write_file(l1 + "/links/orig", "hard linked\n");
    hardlink(l1 + "/links/orig", l1 + "/links/second");
    hardlink(l1 + "/links/orig", l1 + "/links/third");
    symlink_at("../etc/os-release", l1 + "/links/sym");
    symlink_at("/does/not/exist", l1 + "/links/dangling");
    write_file(l1 + "/whole/dir/x.txt", "whole dir removed in l3\n");
    deep(l1 + "/deep", 40, "bottom of a deep tree\n");
    fs::mkdirs(l1 + "/empty");
    if (is_root()) {
        fs::mkdirs(l1 + "/dev");
        device(l1 + "/dev/null", S_IFCHR | 0666, makedev(1, 3));
        device(l1 + "/dev/loop9", S_IFBLK | 0660, makedev(7, 9));
    }
    {
        std::string fifo = l1 + "/run/fifo";
        fs::mkdirs(fs::dirname(fifo));
        if (::mkfifo(fifo.c_str(), 0644) != 0) {
            throw_errno("mkfifo", fifo);
        }
    }
    // l2
    write_file(l2 + "/dir/b.txt", "b from l2\n");
    write_file(l2 + "/dir/c.txt", "c\n");
    make_whiteout(l2 + "/gone.txt", form);
    write_file(l2 + "/flip", "now a file\n");
    write_file(l2 + "/etc/motd", "hello\n");
    write_file(l2 + "/deep/d0/d1/l2.txt", "merged into the deep tree\n");
    // l3 (top)
    make_opaque(l3 + "/opq");
    write_file(l3 + "/opq/visible.txt", "only this\n");
    write_file(l3 + "/flip/again.txt", "a dir again\n");
    make_whiteout(l3 + "/whole", form);
    make_whiteout(l3 + "/dir/a.txt", form);
    write_file(l3 + "/bin/tool", "#!/bin/sh\necho new tool\n", 0755);
    if (::chmod((l3 + "/bin").c_str(), 0755) != 0) {
        throw_errno("chmod", l3 + "/bin");
    }
    return {l3, l2, l1};
}

void build_expected(const std::string& e) {
    common_bottom(e);
    write_file(e + "/dir/b.txt", "b from l2\n");
    write_file(e + "/dir/c.txt", "c\n");
    write_file(e + "/opq/visible.txt", "only this\n");
    write_file(e + "/flip/again.txt", "a dir again\n");
    write_file(e + "/links/orig", "hard linked\n");
    hardlink(e + "/links/orig", e + "/links/second");
    hardlink(e + "/links/orig", e + "/links/third");
    symlink_at("../etc/os-release", e + "/links/sym");
    symlink_at("/does/not/exist", e + "/links/dangling");
    deep(e + "/deep", 40, "bottom of a deep tree\n");
    write_file(e + "/deep/d0/d1/l2.txt", "merged into the deep tree\n");
    write_file(e + "/etc/motd", "hello\n");
    write_file(e + "/bin/tool", "#!/bin/sh\necho new tool\n", 0755);
    fs::mkdirs(e + "/empty");
    if (is_root()) {
        fs::mkdirs(e + "/dev");
        device(e + "/dev/null", S_IFCHR | 0666, makedev(1, 3));
        device(e + "/dev/loop9", S_IFBLK | 0660, makedev(7, 9));
    }
    fs::mkdirs(e + "/run");
    std::string fifo = e + "/run/fifo";
    if (::mkfifo(fifo.c_str(), 0644) != 0) {
        throw_errno("mkfifo", fifo);
    }
}

layerfs::MountSpec spec_for(const std::vector<std::string>& lowers, layerfs::Driver driver,
                            const std::string& upper, const std::string& work) {
    layerfs::MountSpec s;
    s.lowers = lowers;
    s.upper = upper;
    s.work = work;
    s.driver = driver;
    s.fuse_program = STRATA_OVERLAY_PROGRAM;
    return s;
}

int lstat_errno(const std::string& path) {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0 ? 0 : errno;
}

pid_t overlay_daemon_pid(const std::string& target) {
    DIR* d = ::opendir("/proc");
    if (d == nullptr) {
        return -1;
    }
    pid_t found = -1;
    while (auto* e = ::readdir(d)) {
        char* end = nullptr;
        long pid = std::strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end != '\0') {
            continue;
        }
        std::string cmd;
        try {
            cmd = fs::read_file("/proc/" + std::string(e->d_name) + "/cmdline");
        } catch (const Error&) {
            continue;
        }
        std::vector<std::string> args;
        std::size_t i = 0;
        while (i < cmd.size()) {
            std::size_t z = cmd.find('\0', i);
            if (z == std::string::npos) {
                z = cmd.size();
            }
            args.push_back(cmd.substr(i, z - i));
            i = z + 1;
        }
        if (!args.empty() && args[0].ends_with("strata-overlay") && args.back() == target) {
            found = static_cast<pid_t>(pid);
            break;
        }
    }
    ::closedir(d);
    return found;
}

} // namespace strata::test
