// The container's side of the runner: what runs between clone3 and exec.
// Only system calls on memory the parent prepared (see plan.hpp): no
// allocation, no exceptions, no locks. A failure is written to the report
// pipe as (step, errno, index) and the child exits 125.
//
// Order (STYLE.md rule 16), each step commented where it happens:
//   1. reset signals, drop the parent's pipe ends, wait for the parent's
//      go-ahead (it has written the user namespace's id maps by then),
//      join the container's cgroup (device policy) and unshare the cgroup
//      namespace
//   2. make every mount private, bind the root onto itself
//   3. mounts below the root: /proc, /dev and its nodes, /dev/pts, /dev/shm,
//      /dev/mqueue, /sys, masked /proc and /sys paths, generated /etc files,
//      the caller's mounts. Each target is resolved inside the root; for
//      /proc, /sys, /dev and below no symlink is followed at all, and a
//      target of the wrong type is refused. Masks are applied through
//      handles below the procfs/sysfs just mounted, and fail closed.
//   4. create the working directory; make the root read-only if asked
//   5. pivot_root into the root, detach the old root
//   6. hostname, loopback up, rlimits
//   7. stdio, new session (controlling tty), close every other fd
//   8. groups, gid, uid, capabilities (bounding, ambient, sets), no_new_privs
//   9. chdir, then exec (with --init: docker-init from its sealed memfd, which runs the command)
#include "runner/plan.hpp"
#include "util/sys/process.hpp"
#include "util/sys/syscalls.hpp"

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <linux/keyctl.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace strata::runner::detail {

namespace {

constexpr std::uint64_t k_resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;

// The child's own state, per thread: containers start from several threads
// at once (a build's parallel stages), and a child cloned vfork-style shares
// its parent's memory but runs on its parent thread's TLS while that thread
// waits, so thread_local is per container where a global would be shared.
// The last message of a failed fsconfig/fsmount, or the path a check refused.
thread_local char g_detail[sizeof(Report::detail)];

[[noreturn]] void fail(const Plan& plan, Step step, int err, int index = -1) noexcept {
    Report r{static_cast<int>(step), err, index, {}};
    std::memcpy(r.detail, g_detail, sizeof r.detail);
    r.detail[sizeof r.detail - 1] = '\0';
    ssize_t ignored = ::write(plan.report_fd, &r, sizeof r);
    (void)ignored;
    _exit(125);
}

// "/proc/self/fd/N" in a caller-provided buffer.
struct FdPath {
    char buf[32];
    explicit FdPath(int fd) noexcept {
        static constexpr char prefix[] = "/proc/self/fd/";
        std::memcpy(buf, prefix, sizeof prefix - 1);
        char digits[16];
        int n = 0;
        unsigned v = static_cast<unsigned>(fd);
        do {
            digits[n++] = static_cast<char>('0' + v % 10);
            v /= 10;
        } while (v != 0);
        char* p = buf + sizeof prefix - 1;
        while (n > 0) {
            *p++ = digits[--n];
        }
        *p = '\0';
    }
    const char* c_str() const noexcept { return buf; }
};

void close_fd(int fd) noexcept {
    if (fd >= 0) {
        ::close(fd);
    }
}

// Opens path inside the root (O_PATH), creating what is missing: the
// directories on the way and, unless dir, the last component as an empty
// file. Symlinks are followed only inside the root (a dangling one is
// created where it points, inside the root); magic links never. Returns an
// fd or -errno.
int open_target(int rootfd, const char* path, bool dir) noexcept {
    int fd = sys::openat2_direct(rootfd, path, O_PATH, 0, k_resolve);
    if (fd >= 0 || fd != -ENOENT) {
        return fd;
    }
    char buf[PATH_MAX];
    std::size_t len = std::strlen(path);
    if (len >= sizeof buf) {
        return -ENAMETOOLONG;
    }
    std::memcpy(buf, path, len + 1);
    for (int hops = 0; hops < 40; ++hops) {
        int cur = sys::openat2_direct(rootfd, "/", O_PATH | O_DIRECTORY, 0, k_resolve);
        if (cur < 0) {
            return cur;
        }
        bool restart = false;
        std::size_t i = 0;
        while (i < len) {
            while (i < len && buf[i] == '/') {
                ++i;
            }
            if (i >= len) {
                break;
            }
            std::size_t j = i;
            while (j < len && buf[j] != '/') {
                ++j;
            }
            bool last = true;
            for (std::size_t k = j; k < len; ++k) {
                if (buf[k] != '/') {
                    last = false;
                    break;
                }
            }
            char name[NAME_MAX + 1];
            if (j - i > NAME_MAX) {
                close_fd(cur);
                return -ENAMETOOLONG;
            }
            std::memcpy(name, buf + i, j - i);
            name[j - i] = '\0';
            // The prefix up to this component, resolved from the root again
            // so that every symlink goes through RESOLVE_IN_ROOT.
            char saved = buf[j];
            buf[j] = '\0';
            int next = sys::openat2_direct(rootfd, buf, O_PATH, 0, k_resolve);
            buf[j] = saved;
            if (next == -ENOENT) {
                char link[PATH_MAX];
                ssize_t ln = ::readlinkat(cur, name, link, sizeof link - 1);
                if (ln > 0) {
                    // A dangling symlink: continue with its target in place
                    // of the prefix (absolute targets start at the root).
                    link[ln] = '\0';
                    char joined[PATH_MAX];
                    std::size_t n = 0;
                    std::size_t rest = len - j;
                    std::size_t base = link[0] == '/' ? 0 : i;
                    if (base + static_cast<std::size_t>(ln) + rest + 1 >= sizeof joined) {
                        close_fd(cur);
                        return -ENAMETOOLONG;
                    }
                    std::memcpy(joined, buf, base);
                    n = base;
                    std::memcpy(joined + n, link, static_cast<std::size_t>(ln));
                    n += static_cast<std::size_t>(ln);
                    std::memcpy(joined + n, buf + j, rest);
                    n += rest;
                    joined[n] = '\0';
                    std::memcpy(buf, joined, n + 1);
                    len = n;
                    close_fd(cur);
                    restart = true;
                    break;
                }
                int r;
                if (last && !dir) {
                    r = ::openat(cur, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
                                 0644);
                    if (r >= 0) {
                        ::close(r);
                        r = 0;
                    }
                } else {
                    r = ::mkdirat(cur, name, 0755);
                }
                if (r < 0 && errno != EEXIST) {
                    int e = errno;
                    close_fd(cur);
                    return -e;
                }
                buf[j] = '\0';
                next = sys::openat2_direct(rootfd, buf, O_PATH, 0, k_resolve);
                buf[j] = saved;
            }
            close_fd(cur);
            if (next < 0) {
                return next;
            }
            cur = next;
            i = j;
        }
        if (!restart) {
            return cur;
        }
    }
    return -ELOOP;
}

// Puts "path<TAB>link" in g_detail for the parent's message.
void note_symlink(const char* path, std::size_t path_len, const char* link) noexcept {
    std::size_t n = path_len < sizeof g_detail - 2 ? path_len : sizeof g_detail - 2;
    std::memcpy(g_detail, path, n);
    g_detail[n++] = '\t';
    std::size_t ln = std::strlen(link);
    if (ln > sizeof g_detail - 1 - n) {
        ln = sizeof g_detail - 1 - n;
    }
    std::memcpy(g_detail + n, link, ln);
    g_detail[n + ln] = '\0';
}

void note_path(const char* path) noexcept {
    std::size_t n = std::strlen(path);
    if (n >= sizeof g_detail) {
        n = sizeof g_detail - 1;
    }
    std::memcpy(g_detail, path, n);
    g_detail[n] = '\0';
}

// Opens path below the root (O_PATH) one component at a time, never
// following a symlink: a symlink anywhere on the way sets *symlink (and
// g_detail to "prefix<TAB>link") and returns -ELOOP; an intermediate
// component that is not a directory returns -ENOTDIR (g_detail: prefix).
// Missing components are created: directories, and the last one an empty
// file unless dir. For /proc, /sys, /dev and what is mounted below them,
// where a mount landing anywhere else would leave the masks behind.
int open_target_strict(int rootfd, const char* path, bool dir, bool* symlink) noexcept {
    *symlink = false;
    int cur = ::fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
    if (cur < 0) {
        return -errno;
    }
    std::size_t len = std::strlen(path);
    std::size_t i = 0;
    while (i < len) {
        while (i < len && path[i] == '/') {
            ++i;
        }
        if (i >= len) {
            break;
        }
        std::size_t j = i;
        while (j < len && path[j] != '/') {
            ++j;
        }
        std::size_t k = j;
        while (k < len && path[k] == '/') {
            ++k;
        }
        bool last = k >= len;
        char name[NAME_MAX + 1];
        if (j - i > NAME_MAX) {
            ::close(cur);
            return -ENAMETOOLONG;
        }
        std::memcpy(name, path + i, j - i);
        name[j - i] = '\0';
        if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) {
            ::close(cur);
            return -EINVAL;
        }
        int next = ::openat(cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT) {
            int r;
            if (last && !dir) {
                r = ::openat(cur, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (r >= 0) {
                    ::close(r);
                    r = 0;
                }
            } else {
                r = ::mkdirat(cur, name, 0755);
            }
            if (r < 0 && errno != EEXIST) {
                int e = errno;
                ::close(cur);
                return -e;
            }
            next = ::openat(cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        }
        if (next < 0) {
            int e = errno;
            ::close(cur);
            return -e;
        }
        struct stat st;
        if (::fstat(next, &st) != 0) {
            int e = errno;
            ::close(next);
            ::close(cur);
            return -e;
        }
        if (S_ISLNK(st.st_mode)) {
            char link[PATH_MAX];
            ssize_t ln = ::readlinkat(cur, name, link, sizeof link - 1);
            link[ln > 0 ? ln : 0] = '\0';
            note_symlink(path, j, link);
            *symlink = true;
            ::close(next);
            ::close(cur);
            return -ELOOP;
        }
        ::close(cur);
        cur = next;
        if (!last && !S_ISDIR(st.st_mode)) {
            std::size_t n = j < sizeof g_detail ? j : sizeof g_detail - 1;
            std::memcpy(g_detail, path, n);
            g_detail[n] = '\0';
            ::close(cur);
            return -ENOTDIR;
        }
        i = j;
    }
    return cur;
}

// Opens op's target for mounting: without any symlink for no_symlinks
// targets, else resolved inside the root (a symlink is followed only within
// it). Then the type must fit: a directory where a directory is mounted, no
// directory where a file is, a regular file under a generated /etc file.
// Failures are reported with the op's index; returns the O_PATH fd.
int open_op_target(const Plan& plan, int rootfd, const Op& op, int index, bool dir) noexcept {
    int fd;
    if (op.no_symlinks) {
        bool symlink = false;
        fd = open_target_strict(rootfd, op.target, dir, &symlink);
        if (symlink) {
            fail(plan, Step::target_symlink, ELOOP, index);
        }
        if (fd == -ENOTDIR) {
            fail(plan, Step::target_type, ENOTDIR, index);
        }
    } else {
        fd = open_target(rootfd, op.target, dir);
    }
    if (fd < 0) {
        fail(plan, Step::mount_target, -fd, index);
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        fail(plan, Step::mount_target, errno, index);
    }
    int wrong = 0;
    if (dir && !S_ISDIR(st.st_mode)) {
        wrong = ENOTDIR;
    } else if (!dir && S_ISDIR(st.st_mode)) {
        wrong = EISDIR;
    } else if (op.kind == OpKind::gen_file && !S_ISREG(st.st_mode)) {
        wrong = EINVAL;
    }
    if (wrong != 0) {
        note_path(op.target);
        fail(plan, Step::target_type, wrong, index);
    }
    return fd;
}

// Makes the mount at fd read-only, recursively when recursive. The
// fallback remount keeps the flags a user namespace may not clear.
int make_read_only(int fd, bool recursive) noexcept {
    int r = sys::mount_setattr_raw(fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0),
                                   MOUNT_ATTR_RDONLY, 0);
    if (r != -ENOSYS) {
        return r;
    }
    struct statvfs sv;
    if (::fstatvfs(fd, &sv) != 0) {
        return -errno;
    }
    unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY;
    if (sv.f_flag & ST_NOSUID) {
        flags |= MS_NOSUID;
    }
    if (sv.f_flag & ST_NODEV) {
        flags |= MS_NODEV;
    }
    if (sv.f_flag & ST_NOEXEC) {
        flags |= MS_NOEXEC;
    }
    if (sv.f_flag & ST_NOATIME) {
        flags |= MS_NOATIME;
    }
    if (sv.f_flag & ST_NODIRATIME) {
        flags |= MS_NODIRATIME;
    }
    if (sv.f_flag & ST_RELATIME) {
        flags |= MS_RELATIME;
    }
    FdPath p(fd);
    return ::mount(nullptr, p.c_str(), nullptr, flags, nullptr) == 0 ? 0 : -errno;
}

// Reopens target (now covered by a new mount) and makes it read-only.
int reopen_read_only(int rootfd, const char* target, bool recursive) noexcept {
    int fd = sys::openat2_direct(rootfd, target, O_PATH, 0, k_resolve);
    if (fd < 0) {
        return fd;
    }
    int r = make_read_only(fd, recursive);
    ::close(fd);
    return r;
}

// Splits "/a/b/c" into "/a/b" (in dir) and "c" (returned pointer into path).
const char* split_parent(const char* path, char (&dir)[PATH_MAX]) noexcept {
    const char* slash = std::strrchr(path, '/');
    if (slash == nullptr) {
        dir[0] = '/';
        dir[1] = '\0';
        return path;
    }
    std::size_t n = static_cast<std::size_t>(slash - path);
    if (n >= PATH_MAX) {
        n = PATH_MAX - 1;
    }
    std::memcpy(dir, path, n);
    dir[n] = '\0';
    if (n == 0) {
        dir[0] = '/';
        dir[1] = '\0';
    }
    return slash + 1;
}

// -- The new mount API (STYLE rule 17), used when the parent's probe found
// it; mount(2) on /proc/self/fd/N targets otherwise. Both attach to an O_PATH
// fd that was resolved inside the root, never to a path string.

unsigned attr_flags(unsigned long ms) noexcept {
    unsigned a = 0;
    if (ms & MS_RDONLY)
        a |= MOUNT_ATTR_RDONLY;
    if (ms & MS_NOSUID)
        a |= MOUNT_ATTR_NOSUID;
    if (ms & MS_NODEV)
        a |= MOUNT_ATTR_NODEV;
    if (ms & MS_NOEXEC)
        a |= MOUNT_ATTR_NOEXEC;
    if (ms & MS_STRICTATIME)
        a |= MOUNT_ATTR_STRICTATIME;
    return a;
}

// Attaches the detached mount tree at target_fd. With keep, *keep gets an
// fd of the attached mount's root (the tree fd itself), for the masks.
int attach(int tree, int target_fd, int* keep = nullptr) noexcept {
    int r = sys::move_mount_raw(tree, "", target_fd, "",
                                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
    if (r == 0 && keep != nullptr) {
        *keep = tree;
        return 0;
    }
    ::close(tree);
    return r;
}

// A new filesystem instance: fsopen, one fsconfig per "key[=value]" in
// data, create, fsmount with the mount attributes, attach.
// Keeps the filesystem's explanation ("e tmpfs: Bad value for 'size'")
// from the fs context's log, without the "e " prefix.
void keep_fs_log(int fs) noexcept {
    char buf[sizeof g_detail];
    ssize_t n = ::read(fs, buf, sizeof buf - 1);
    if (n > 2) {
        buf[n] = '\0';
        const char* text = (buf[1] == ' ') ? buf + 2 : buf;
        std::size_t len = std::strlen(text);
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ')) {
            --len;
        }
        std::memcpy(g_detail, text, len);
        g_detail[len] = '\0';
    }
}

int mount_fs_new(const char* type, unsigned long flags, const char* data, int target_fd,
                 int* keep = nullptr) noexcept {
    int fs = sys::fsopen_raw(type, FSOPEN_CLOEXEC);
    if (fs < 0) {
        return fs;
    }
    if (data != nullptr) {
        char buf[256];
        std::size_t len = std::strlen(data);
        if (len >= sizeof buf) {
            ::close(fs);
            return -E2BIG;
        }
        std::memcpy(buf, data, len + 1);
        char* item = buf;
        while (item != nullptr && *item != '\0') {
            char* comma = std::strchr(item, ',');
            if (comma != nullptr) {
                *comma = '\0';
            }
            char* eq = std::strchr(item, '=');
            int r;
            if (eq != nullptr) {
                *eq = '\0';
                r = sys::fsconfig_raw(fs, FSCONFIG_SET_STRING, item, eq + 1);
            } else {
                r = sys::fsconfig_raw(fs, FSCONFIG_SET_FLAG, item, nullptr);
            }
            if (r < 0) {
                keep_fs_log(fs);
                ::close(fs);
                return r;
            }
            item = comma != nullptr ? comma + 1 : nullptr;
        }
    }
    int r = sys::fsconfig_raw(fs, FSCONFIG_CMD_CREATE, nullptr, nullptr);
    if (r < 0) {
        keep_fs_log(fs);
        ::close(fs);
        return r;
    }
    int mnt = sys::fsmount_raw(fs, FSMOUNT_CLOEXEC, attr_flags(flags));
    if (mnt < 0) {
        keep_fs_log(fs);
    }
    ::close(fs);
    if (mnt < 0) {
        return mnt;
    }
    return attach(mnt, target_fd, keep);
}

// Binds source (dirfd + path, or dirfd alone with an empty path), read-only
// before it is attached when ro, so it is never writable, even briefly.
int bind_new(int src_dirfd, const char* src_path, bool recursive, bool ro, int target_fd,
             int* keep = nullptr, unsigned extra_attrs = 0) noexcept {
    unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0);
    if (src_path[0] == '\0') {
        flags |= AT_EMPTY_PATH;
    }
    int tree = sys::open_tree_raw(src_dirfd, src_path, flags);
    if (tree < 0) {
        return tree;
    }
    if (ro || extra_attrs != 0) {
        int r = sys::mount_setattr_raw(tree, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0),
                                       (ro ? MOUNT_ATTR_RDONLY : 0) | extra_attrs, 0);
        if (r < 0) {
            ::close(tree);
            return r;
        }
    }
    return attach(tree, target_fd, keep);
}

// The procfs and sysfs this container just mounted (k_mount_proc, k_mount_sys):
// the masks are resolved below these handles, never through a path in the
// image.
// Per thread, as g_detail (set again for every container).
thread_local int g_kept[k_kept_mounts] = {-1, -1};

bool on_fs(int fd, long magic) noexcept {
    struct statfs sf;
    return ::fstatfs(fd, &sf) == 0 && static_cast<long>(sf.f_type) == magic;
}

long kept_magic(int base) noexcept {
    return base == k_mount_proc ? PROC_SUPER_MAGIC : SYSFS_MAGIC;
}

// Remembers the filesystem just mounted on op.target for the masks. With
// the new mount API kept is the mount's own fd; with mount(2) the target is
// opened again (it has no symlink on the way: no_symlinks). Either way it
// must be the filesystem asked for.
void keep_mount(const Plan& plan, int rootfd, const Op& op, int index, int kept) noexcept {
    if (kept < 0) {
        kept = sys::openat2_direct(rootfd, op.target, O_PATH | O_DIRECTORY, 0,
                                   k_resolve | RESOLVE_NO_SYMLINKS);
        if (kept < 0) {
            fail(plan, Step::mask_verify, -kept, index);
        }
    }
    if (!on_fs(kept, kept_magic(op.keep_mount))) {
        fail(plan, Step::mask_verify, EXDEV, index);
    }
    g_kept[op.keep_mount] = kept;
}

// A masked or read-only path: opened below the procfs/sysfs mounted for this
// container, without following any symlink and without leaving that mount,
// then covered through that fd. A path this kernel does not have is fine (as
// runc); every other failure stops the container.
void mask_op(const Plan& plan, const Op& op, int index) noexcept {
    int base = op.base >= 0 && op.base < k_kept_mounts ? g_kept[op.base] : -1;
    if (base < 0) {
        fail(plan, Step::mask_verify, EBADF, index);
    }
    int fd = sys::openat2_direct(base, op.target, O_PATH | O_NOFOLLOW, 0,
                                 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
                                     RESOLVE_NO_XDEV);
    if (fd == -ENOENT) {
        return; // not on this kernel
    }
    if (fd < 0) {
        fail(plan, Step::mount_target, -fd, index);
    }
    if (!on_fs(fd, kept_magic(op.base))) {
        fail(plan, Step::mask_verify, EXDEV, index);
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        fail(plan, Step::mount_target, errno, index);
    }
    int r;
    if (plan.new_mount_api) {
        if (op.kind == OpKind::readonly) {
            r = bind_new(fd, "", true, true, fd);
        } else if (S_ISDIR(st.st_mode)) {
            r = mount_fs_new("tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0", fd);
        } else {
            r = bind_new(AT_FDCWD, "/dev/null", false, false, fd);
        }
        if (r < 0) {
            fail(plan, Step::mount, -r, index);
        }
        ::close(fd);
        return;
    }
    FdPath target(fd);
    if (op.kind == OpKind::readonly) {
        r = ::mount(target.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr);
    } else if (S_ISDIR(st.st_mode)) {
        r = ::mount("tmpfs", target.c_str(), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    "size=0");
    } else {
        r = ::mount("/dev/null", target.c_str(), nullptr, MS_BIND, nullptr);
    }
    if (r != 0) {
        fail(plan, Step::mount, errno, index);
    }
    if (op.kind == OpKind::readonly) {
        // The new mount is on top of the path fd: reach it through the
        // path again, still below the kept handle and on its filesystem.
        int top =
            sys::openat2_direct(base, op.target, O_PATH | O_NOFOLLOW, 0,
                                RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
        if (top < 0) {
            fail(plan, Step::remount_ro, -top, index);
        }
        if (!on_fs(top, kept_magic(op.base))) {
            fail(plan, Step::mask_verify, EXDEV, index);
        }
        int e = make_read_only(top, true);
        if (e < 0) {
            fail(plan, Step::remount_ro, -e, index);
        }
        ::close(top);
    }
    ::close(fd);
}

// A device node in the container: mknod with the host node's type, number,
// mode and owner (as Docker), or, in a user namespace (where the kernel
// refuses mknod of devices), a bind of the host's node.
void device_op(const Plan& plan, int rootfd, const Op& op, int index) noexcept {
    if (plan.device_bind) {
        int fd = open_op_target(plan, rootfd, op, index, false);
        int r;
        if (plan.new_mount_api) {
            r = bind_new(AT_FDCWD, op.source, false, false, fd);
        } else {
            FdPath target(fd);
            r = ::mount(op.source, target.c_str(), nullptr, MS_BIND, nullptr) == 0 ? 0 : -errno;
        }
        if (r < 0) {
            fail(plan, Step::device, -r, index);
        }
        ::close(fd);
        return;
    }
    char dir[PATH_MAX];
    const char* name = split_parent(op.target, dir);
    Op parent = op;
    parent.target = dir;
    int dfd = open_op_target(plan, rootfd, parent, index, true);
    if (::unlinkat(dfd, name, 0) != 0 && errno != ENOENT) {
        fail(plan, Step::device, errno, index);
    }
    if (::mknodat(dfd, name, op.dev_mode, static_cast<dev_t>(op.rdev)) != 0) {
        fail(plan, Step::device, errno, index);
    }
    if (::fchownat(dfd, name, op.dev_uid, op.dev_gid, AT_SYMLINK_NOFOLLOW) != 0 ||
        ::fchmodat(dfd, name, op.dev_mode & 07777, 0) != 0) {
        fail(plan, Step::device, errno, index);
    }
    ::close(dfd);
}

void run_op(const Plan& plan, int rootfd, const Op& op, int index) noexcept {
    switch (op.kind) {
    case OpKind::symlink: {
        char dir[PATH_MAX];
        const char* name = split_parent(op.target, dir);
        Op parent = op;
        parent.target = dir;
        int dfd = open_op_target(plan, rootfd, parent, index, true);
        // The directory fd is O_PATH; symlinkat accepts it as dirfd.
        if (::symlinkat(op.content, dfd, name) != 0 && errno != EEXIST) {
            fail(plan, Step::mount, errno, index);
        }
        ::close(dfd);
        return;
    }
    case OpKind::mask:
    case OpKind::readonly:
        mask_op(plan, op, index);
        return;
    case OpKind::device:
        device_op(plan, rootfd, op, index);
        return;
    case OpKind::gen_file: {
        // Staged in the container's own /dev tmpfs, bound, then unlinked: the
        // file lives only as long as the container's mount namespace and is
        // never written into the root directory (the image's layers).
        int dev = sys::openat2_direct(rootfd, "/dev", O_PATH | O_DIRECTORY, 0,
                                      k_resolve | RESOLVE_NO_SYMLINKS);
        if (dev < 0) {
            fail(plan, Step::mount_target, -dev, index);
        }
        char name[32] = ".strata-etc-";
        std::size_t n = std::strlen(name);
        name[n] = static_cast<char>('a' + index % 26);
        name[n + 1] = static_cast<char>('a' + (index / 26) % 26);
        name[n + 2] = '\0';
        int file = ::openat(dev, name, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (file < 0) {
            fail(plan, Step::mount, errno, index);
        }
        std::size_t done = 0;
        while (done < op.content_len) {
            ssize_t w = ::write(file, op.content + done, op.content_len - done);
            if (w < 0) {
                if (errno == EINTR) {
                    continue;
                }
                fail(plan, Step::mount, errno, index);
            }
            done += static_cast<std::size_t>(w);
        }
        int fd = open_op_target(plan, rootfd, op, index, false);
        if (plan.new_mount_api) {
            int r = bind_new(file, "", false, false, fd);
            if (r < 0) {
                fail(plan, Step::mount, -r, index);
            }
        } else {
            FdPath source(file);
            FdPath target(fd);
            if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
                fail(plan, Step::mount, errno, index);
            }
        }
        ::unlinkat(dev, name, 0);
        ::close(fd);
        ::close(file);
        ::close(dev);
        return;
    }
    case OpKind::fs:
    case OpKind::bind: {
        int fd = open_op_target(plan, rootfd, op, index, op.target_dir);
        int* keep = nullptr;
        int kept = -1;
        if (op.keep_mount >= 0 && op.keep_mount < k_kept_mounts) {
            keep = &kept;
        }
        if (plan.new_mount_api) {
            int r;
            if (op.kind == OpKind::fs) {
                r = mount_fs_new(op.fstype, op.flags, op.data, fd, keep);
                if (r < 0 && op.sys_fallback && (r == -EPERM || r == -EACCES)) {
                    r = bind_new(AT_FDCWD, "/sys", true, true, fd, keep);
                }
            } else {
                r = bind_new(AT_FDCWD, op.source, true, op.read_only, fd, nullptr,
                             attr_flags(op.flags));
            }
            if (r < 0) {
                fail(plan, Step::mount, -r, index);
            }
            ::close(fd);
            if (keep != nullptr) {
                keep_mount(plan, rootfd, op, index, kept);
            }
            return;
        }
        FdPath target(fd);
        int r;
        if (op.kind == OpKind::fs) {
            r = ::mount(op.source, target.c_str(), op.fstype, op.flags, op.data);
            if (r != 0 && op.sys_fallback && (errno == EPERM || errno == EACCES)) {
                // sysfs needs a network namespace of our own user namespace;
                // with the host's network, bind the host's /sys instead.
                r = ::mount("/sys", target.c_str(), nullptr, MS_BIND | MS_REC, nullptr);
            }
        } else {
            r = ::mount(op.source, target.c_str(), nullptr, MS_BIND | MS_REC, nullptr);
            // A bind's own flags (a cache mount's nosuid,nodev) need a remount.
            // The flags the mount already has are kept (a user namespace may
            // not clear them).
            // The fd still names the directory the bind now covers: the
            // new mount is opened again inside the root.
            if (r == 0 && (op.flags & (MS_NOSUID | MS_NODEV)) != 0) {
                int mnt = sys::openat2_direct(rootfd, op.target, O_PATH, 0, k_resolve);
                struct statvfs sv;
                if (mnt < 0) {
                    errno = -mnt;
                    r = -1;
                } else if ((r = ::fstatvfs(mnt, &sv)) == 0) {
                    unsigned long keep = ((sv.f_flag & ST_RDONLY) ? MS_RDONLY : 0) |
                                         ((sv.f_flag & ST_NOEXEC) ? MS_NOEXEC : 0) |
                                         ((sv.f_flag & ST_NOSUID) ? MS_NOSUID : 0) |
                                         ((sv.f_flag & ST_NODEV) ? MS_NODEV : 0);
                    FdPath covering(mnt);
                    r = ::mount(nullptr, covering.c_str(), nullptr,
                                MS_REMOUNT | MS_BIND | keep | (op.flags & (MS_NOSUID | MS_NODEV)),
                                nullptr);
                }
                if (mnt >= 0) {
                    int e = errno;
                    ::close(mnt);
                    errno = e;
                }
            }
        }
        if (r != 0) {
            fail(plan, Step::mount, errno, index);
        }
        ::close(fd);
        if (op.read_only) {
            int e = reopen_read_only(rootfd, op.target, true);
            if (e < 0) {
                fail(plan, Step::remount_ro, -e, index);
            }
        }
        if (keep != nullptr) {
            keep_mount(plan, rootfd, op, index, -1);
        }
        return;
    }
    }
}

// Tries every candidate path like execvp; reports 127 (ENOENT) or why not.
[[noreturn]] void exec_command(const Plan& plan) noexcept {
    auto argv = const_cast<char* const*>(plan.argv.data());
    auto envp = const_cast<char* const*>(plan.envp.data());
    int eacces = -1;
    int last_err = ENOENT;
    int last_index = 0;
    for (std::size_t i = 0; i < plan.candidates.size(); ++i) {
        ::execve(plan.candidates[i], argv, envp);
        int e = errno;
        if (e == EACCES) {
            if (eacces < 0) {
                eacces = static_cast<int>(i);
            }
            continue;
        }
        if (e == ENOENT || e == ENOTDIR || e == ESTALE || e == ENODEV || e == ETIMEDOUT) {
            last_err = e;
            last_index = static_cast<int>(i);
            continue;
        }
        fail(plan, Step::exec, e, static_cast<int>(i));
    }
    if (eacces >= 0) {
        fail(plan, Step::exec, EACCES, eacces);
    }
    fail(plan, Step::exec, last_err == ENOTDIR ? ENOENT : last_err, last_index);
}

void set_session(const Plan& plan) noexcept {
    // 7b. A session of its own, so that job control and Ctrl-C on the
    // caller's terminal reach strata, not the container directly; with a
    // tty the pty becomes the controlling terminal.
    if (::setsid() < 0 && errno != EPERM) {
        fail(plan, Step::setsid, errno);
    }
    if (plan.tty && ::ioctl(0, TIOCSCTTY, 0) != 0) {
        fail(plan, Step::controlling_tty, errno);
    }
}

// With --init, PID 1 is docker-init (tini, from the sealed memfd the parent
// made), which runs the command as its child, forwards signals to it, reaps
// orphans and exits with the command's status (128+N for a death by signal
// N). The command is looked up here first, so that a missing or
// non-executable one fails as without init (Docker's 127/126), naming it.
[[noreturn]] void exec_init(const Plan& plan) noexcept {
    int eacces = -1;
    int last_err = ENOENT;
    int last_index = 0;
    bool found = false;
    for (std::size_t i = 0; i < plan.candidates.size() && !found; ++i) {
        struct stat st;
        int e = 0;
        if (::stat(plan.candidates[i], &st) != 0) {
            e = errno;
        } else if (!S_ISREG(st.st_mode) || ::access(plan.candidates[i], X_OK) != 0) {
            e = EACCES;
        }
        if (e == 0) {
            found = true;
        } else if (e == EACCES) {
            if (eacces < 0) {
                eacces = static_cast<int>(i);
            }
        } else if (e == ENOENT || e == ENOTDIR || e == ESTALE || e == ENODEV || e == ETIMEDOUT) {
            last_err = e;
            last_index = static_cast<int>(i);
        } else {
            fail(plan, Step::exec, e, static_cast<int>(i));
        }
    }
    if (!found) {
        if (eacces >= 0) {
            fail(plan, Step::exec, EACCES, eacces);
        }
        fail(plan, Step::exec, last_err == ENOTDIR ? ENOENT : last_err, last_index);
    }
    ::fexecve(plan.init_fd, const_cast<char* const*>(plan.init_argv.data()),
              const_cast<char* const*>(plan.envp.data()));
    fail(plan, Step::fork_init, errno);
}

// A session keyring of the container's own, as runc gives every container:
// without it the container shares the caller's session keyring, and
// request_key/KEYCTL_READ inside would read the caller's keys. A new
// anonymous keyring (name NULL) is never one the host already has. A kernel
// without keyrings (ENOSYS) has no keyring to leak; any other failure stops
// the container.
void join_session_keyring(const Plan& plan) noexcept {
    if (::syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, nullptr, 0, 0, 0) < 0 &&
        errno != ENOSYS) {
        fail(plan, Step::session_keyring, errno);
    }
}

// The seccomp filter the parent compiled, loaded as the last step before
// the command (or strata's init) runs: every setup call it would refuse
// (mount, pivot_root, sethostname, setgroups with...) is done, and
// no_new_privs is already set, which is what lets an unprivileged process
// (the rootless path) load a filter. What runs after it (setsid, TIOCSCTTY,
// chdir, execve; the init's clone, waits and kills) is allowed by Docker's
// profile.
void load_seccomp(const Plan& plan) noexcept {
    if (plan.seccomp.code.empty()) {
        return;
    }
    const auto* prog = &plan.seccomp_fprog;
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, plan.seccomp.flags, prog) != 0) {
        fail(plan, Step::seccomp, errno);
    }
}

// 1c. The container's cgroup (the device policy, the resource limits),
// before anything in the image can be opened: "0" moves the writer. Then a
// cgroup namespace rooted there, so that /proc/self/cgroup shows "/" as in
// Docker.
void join_cgroup(const Plan& plan) noexcept {
    bool joined = false;
    for (int i = 0; i < k_max_cgroup_fds; ++i) {
        if (plan.cgroup_fds[i] < 0) {
            continue;
        }
        if (::write(plan.cgroup_fds[i], "0", 1) != 1) {
            fail(plan, Step::cgroup, errno, i);
        }
        ::close(plan.cgroup_fds[i]);
        joined = true;
    }
    if (joined && plan.unshare_cgroupns && ::unshare(CLONE_NEWCGROUP) != 0) {
        fail(plan, Step::cgroupns, errno);
    }
}

} // namespace

void child_main(const Plan& plan) noexcept {
    child_begin();
    // 1. Signals: default dispositions (an ignored SIGPIPE must not leak
    // into the command) and an empty mask; the parent blocked everything
    // around clone so that none of its handlers can run here.
    struct sigaction dfl;
    std::memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            ::sigaction(sig, &dfl, nullptr);
        }
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // The container dies with the thread that started it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int fd : plan.close_in_child) {
        close_fd(fd);
    }
    if (plan.join_netns_fd >= 0 && ::setns(plan.join_netns_fd, CLONE_NEWNET) != 0) {
        fail(plan, Step::join_namespace, errno);
    }
    // 1b. Wait for the parent: it writes the id maps first. EOF means it
    // died. Without id maps to wait for, only check that it has not died
    // before PR_SET_PDEATHSIG took effect: it holds the write end open
    // until the command has started, so a hang-up means it is gone.
    if (plan.wait_parent) {
        char go = 0;
        ssize_t n;
        do {
            n = ::read(plan.sync_fd, &go, 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1) {
            fail(plan, Step::wait_parent, n < 0 ? errno : EPIPE);
        }
    } else {
        struct pollfd p {
            plan.sync_fd, POLLIN, 0
        };
        if (::poll(&p, 1, 0) != 0) {
            fail(plan, Step::wait_parent, EPIPE);
        }
    }
    ::close(plan.sync_fd);
    join_cgroup(plan);

    // 2. Mount namespace: nothing we mount propagates back to the host.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        fail(plan, Step::make_private, errno);
    }
    // The root becomes a mount point of its own (pivot_root needs one).
    if (::mount(plan.rootfs, plan.rootfs, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
        fail(plan, Step::bind_root, errno);
    }
    int rootfd = ::open(plan.rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
        fail(plan, Step::open_root, errno);
    }

    // 3. Mounts below the root, in the planned order.
    for (std::size_t i = 0; i < plan.ops.size(); ++i) {
        run_op(plan, rootfd, plan.ops[i], static_cast<int>(i));
    }

    // 3b. With a tty: a pty from the container's own devpts instance (so
    // that `tty` says /dev/pts/0, as in Docker), its slave bound on
    // /dev/console, its master passed to the parent over a unix socket.
    int console_slave = -1;
    if (plan.tty) {
        int master = sys::openat2_direct(rootfd, "/dev/pts/ptmx", O_RDWR | O_NOCTTY, 0, k_resolve);
        if (master < 0) {
            fail(plan, Step::console, -master);
        }
        int unlock = 0;
        if (::ioctl(master, TIOCSPTLCK, &unlock) != 0) {
            fail(plan, Step::console, errno);
        }
        console_slave = ::ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (console_slave < 0) {
            fail(plan, Step::console, errno);
        }
        int target = open_target(rootfd, "/dev/console", false);
        if (target < 0) {
            fail(plan, Step::console, -target);
        }
        FdPath source(console_slave);
        FdPath tpath(target);
        if (::mount(source.c_str(), tpath.c_str(), nullptr, MS_BIND, nullptr) != 0) {
            fail(plan, Step::console, errno);
        }
        ::close(target);
        if (!send_fd(plan.console_fd, master)) {
            fail(plan, Step::console, errno);
        }
        ::close(master);
        ::close(plan.console_fd);
    }

    // 4. The working directory exists (created as Docker does) and may not
    // lead out of the root, not even through /proc/self/fd magic links.
    int wd = open_target(rootfd, plan.workdir, true);
    if (wd < 0) {
        fail(plan, Step::workdir, -wd);
    }
    struct stat wst;
    if (::fstat(wd, &wst) != 0 || !S_ISDIR(wst.st_mode)) {
        fail(plan, Step::workdir, ENOTDIR);
    }
    ::close(wd);
    if (plan.read_only) {
        int e = make_read_only(rootfd, false);
        if (e < 0) {
            fail(plan, Step::remount_ro, -e);
        }
    }

    // 5. pivot_root(".", ".") stacks the old root on top of the new one;
    // detaching it leaves only the container's tree (no put_old directory
    // has to be created in the root).
    if (::fchdir(rootfd) != 0) {
        fail(plan, Step::pivot_root, errno);
    }
    if (sys::pivot_root(".", ".") != 0) {
        fail(plan, Step::pivot_root, errno);
    }
    if (::umount2(".", MNT_DETACH) != 0) {
        fail(plan, Step::detach_old_root, errno);
    }
    if (::chdir("/") != 0) {
        fail(plan, Step::pivot_root, errno);
    }
    ::close(rootfd);

    // 6. Hostname, network, limits.
    if (::sethostname(plan.hostname, std::strlen(plan.hostname)) != 0) {
        fail(plan, Step::hostname, errno);
    }
    if (plan.network_none) {
        int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0) {
            fail(plan, Step::loopback, errno);
        }
        struct ifreq ifr;
        std::memset(&ifr, 0, sizeof ifr);
        std::memcpy(ifr.ifr_name, "lo", 3);
        if (::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
            fail(plan, Step::loopback, errno);
        }
        ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
        if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) {
            fail(plan, Step::loopback, errno);
        }
        ::close(s);
    }
    for (std::size_t i = 0; i < plan.rlimits.size(); ++i) {
        const Rlimit& l = plan.rlimits[i];
        struct rlimit rl {
            l.soft, l.hard
        };
        if (::setrlimit(static_cast<__rlimit_resource_t>(l.resource), &rl) != 0) {
            fail(plan, Step::rlimit, errno, static_cast<int>(i));
        }
    }

    become_command(plan, console_slave);
}

void child_begin() noexcept {
    for (int& k : g_kept) {
        k = -1; // a vfork-style child sees what the last container on this thread left
    }
    g_detail[0] = '\0';
}

[[noreturn]] void child_fail(const Plan& plan, Step step, int err, int index) noexcept {
    fail(plan, step, err, index);
}

void become_command(const Plan& plan, int console_slave) noexcept {
    // 7. Standard streams: duplicate the sources above 2 first so that one
    // source may be another's target, then put them in place.
    int tmp[3] = {-1, -1, -1};
    for (int i = 0; i < 3; ++i) {
        int src = plan.tty ? console_slave : plan.stdio[i];
        if (src >= 0) {
            tmp[i] = ::fcntl(src, F_DUPFD_CLOEXEC, 3);
            if (tmp[i] < 0) {
                fail(plan, Step::stdio, errno, i);
            }
        }
    }
    for (int i = 0; i < 3; ++i) {
        if (tmp[i] >= 0 && ::dup2(tmp[i], i) < 0) {
            fail(plan, Step::stdio, errno, i);
        }
    }
    // Every other fd closes at exec (the report pipe too: EOF tells the
    // parent the exec succeeded).
    if (sys::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        fail(plan, Step::close_fds, errno);
    }

    // 7c. A session keyring of its own, owned by the container's root (as
    // runc, before the switch to the command's user).
    join_session_keyring(plan);

    // 8. Credentials. The bounding set is cut while we still hold
    // CAP_SETPCAP; the permitted set is what no_new_privs lets exec keep.
    // Raw system calls, not glibc's wrappers: in a child cloned from a
    // multi-threaded process (the builder runs stages on threads) glibc's
    // setgroups/setresuid broadcast the change to the parent's other threads
    // (__nptl_setxid), which do not exist here, and wait for them for ever.
    if (!plan.setgroups_denied) {
        if (::syscall(SYS_setgroups, plan.groups.size(), plan.groups.data()) != 0) {
            fail(plan, Step::groups, errno);
        }
    }
    for (int cap = 0; cap <= plan.cap_last; ++cap) {
        if ((plan.caps & (std::uint64_t{1} << cap)) == 0 &&
            ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
            fail(plan, Step::cap_bounding, errno, cap);
        }
    }
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
        fail(plan, Step::cap_ambient, errno);
    }
    if (::syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0) {
        fail(plan, Step::gid, errno);
    }
    if (::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) {
        fail(plan, Step::uid, errno);
    }
    std::uint64_t caps = plan.uid == 0 ? plan.caps : 0;
    int e = sys::capset_self(caps, caps, 0);
    if (e < 0) {
        fail(plan, Step::capset, -e);
    }
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        fail(plan, Step::no_new_privs, errno);
    }
    load_seccomp(plan);

    // 9. Run.
    set_session(plan);
    if (::chdir(plan.workdir) != 0) {
        fail(plan, Step::chdir, errno);
    }
    if (plan.init) {
        exec_init(plan);
    }
    exec_command(plan);
}

} // namespace strata::runner::detail
