#include "util/fs.hpp"

#include "util/error.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <string>
#include <sys/xattr.h>
#include <unistd.h>
#include <vector>

namespace strata::fs {

UniqueFd open_at(int dirfd, const std::string& path, int flags, mode_t mode) {
    int fd;
    do {
        fd = ::openat(dirfd, path.c_str(), flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        throw_errno("open", path);
    }
    return UniqueFd(fd);
}

UniqueFd open(const std::string& path, int flags, mode_t mode) {
    return open_at(AT_FDCWD, path, flags, mode);
}

std::string fd_name(int fd) {
    std::string link = "/proc/self/fd/" + std::to_string(fd);
    char buf[PATH_MAX];
    ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
    if (n <= 0) {
        return "fd " + std::to_string(fd);
    }
    return std::string(buf, static_cast<std::size_t>(n));
}

namespace {
// The name an error shows: path, or the fd's link when the caller gave none.
std::string shown(int fd, std::string_view path) {
    return path.empty() ? fd_name(fd) : std::string(path);
}

// One read(2), retried on EINTR; 0 at EOF.
std::size_t read_some(int fd, std::string_view path, void* data, std::size_t size) {
    while (true) {
        ssize_t n = ::read(fd, data, size);
        if (n >= 0) {
            return static_cast<std::size_t>(n);
        }
        if (errno != EINTR) {
            int err = errno;
            throw SysError("read", shown(fd, path), err);
        }
    }
}
} // namespace

std::uint64_t read_each(int fd, std::string_view path, std::size_t chunk,
                        const std::function<void(const char*, std::size_t)>& sink) {
    std::vector<char> buf(chunk);
    std::uint64_t total = 0;
    while (true) {
        std::size_t n = read_some(fd, path, buf.data(), buf.size());
        if (n == 0) {
            return total;
        }
        total += n;
        sink(buf.data(), n);
    }
}

std::string read_fd(int fd, std::string_view path, std::size_t max_size) {
    auto too_large = [&] {
        return Error(quote_path(shown(fd, path)) + ": file is larger than the limit of " +
                     std::to_string(max_size) + " bytes");
    };
    std::string out;
    // A regular file is read straight into a buffer of its size: growing the
    // string 64 KiB at a time copies a file of megabytes several times over,
    // into fresh pages that fault expensively in this project's VMs.
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        auto size = static_cast<std::uint64_t>(st.st_size);
        if (size > max_size) {
            throw too_large();
        }
        out.resize(static_cast<std::size_t>(size));
        out.resize(read_full(fd, path, out.data(), out.size()));
        if (out.size() < size) {
            return out; // shrank while read: what was there
        }
    }
    // Whatever follows (a file that grew, a pipe, a /proc file of size 0).
    read_each(fd, path, 65536, [&](const char* p, std::size_t n) {
        if (out.size() + n > max_size) {
            throw too_large();
        }
        out.append(p, n);
    });
    return out;
}

std::string read_fd(int fd, std::size_t max_size) {
    return read_fd(fd, {}, max_size);
}

std::string read_file(const std::string& path, std::size_t max_size) {
    UniqueFd fd = open(path, O_RDONLY);
    return read_fd(fd.get(), path, max_size);
}

namespace {

// Writes all of data: at offset when given (pwrite, the offset moving on),
// else at the file's position.
void write_fully(int fd, std::string_view path, const void* data, std::size_t size,
                 const std::uint64_t* offset) {
    const char* p = static_cast<const char*>(data);
    std::uint64_t at = offset != nullptr ? *offset : 0;
    while (size > 0) {
        ssize_t n = offset != nullptr ? ::pwrite(fd, p, size, static_cast<off_t>(at))
                                      : ::write(fd, p, size);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int err = errno;
            throw SysError("write", shown(fd, path), err);
        }
        p += n;
        size -= static_cast<std::size_t>(n);
        at += static_cast<std::uint64_t>(n);
    }
}

} // namespace

void write_all(int fd, std::string_view path, const void* data, std::size_t size) {
    write_fully(fd, path, data, size, nullptr);
}

std::size_t pread_full(int fd, std::string_view path, void* data, std::size_t size,
                       std::uint64_t offset) {
    char* p = static_cast<char*>(data);
    std::size_t done = 0;
    while (done < size) {
        ssize_t n = ::pread(fd, p + done, size - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int err = errno;
            throw SysError("read", shown(fd, path), err);
        }
        if (n == 0) {
            break;
        }
        done += static_cast<std::size_t>(n);
    }
    return done;
}

void pwrite_all(int fd, std::string_view path, const void* data, std::size_t size,
                std::uint64_t offset) {
    write_fully(fd, path, data, size, &offset);
}

std::size_t read_full(int fd, std::string_view path, void* data, std::size_t size) {
    char* p = static_cast<char*>(data);
    std::size_t done = 0;
    while (done < size) {
        std::size_t n = read_some(fd, path, p + done, size - done);
        if (n == 0) {
            break;
        }
        done += n;
    }
    return done;
}

void write_file_atomic(const std::string& path, std::string_view data, mode_t mode) {
    // A name unique per writer (mkostemp): threads of one process may write
    // the same destination at once (two stages reaching the same cache key).
    std::string tmp = path + ".tmp.XXXXXX";
    {
        int raw = ::mkostemp(tmp.data(), O_CLOEXEC);
        if (raw < 0) {
            throw_errno("mkostemp", path + ".tmp.XXXXXX");
        }
        UniqueFd fd(raw);
        try {
            if (::fchmod(fd.get(), mode) != 0) {
                throw_errno("fchmod", tmp);
            }
            write_all(fd.get(), tmp, data);
            if (::fsync(fd.get()) != 0) {
                throw_errno("fsync", tmp);
            }
            fd.close();
        } catch (...) {
            ::unlink(tmp.c_str());
            throw;
        }
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        throw SysError("rename", path, err);
    }
}

void mkdirs(const std::string& path, mode_t mode) {
    if (path.empty()) {
        return;
    }
    if (::mkdir(path.c_str(), mode) == 0) {
        return;
    }
    if (errno == EEXIST) {
        if (is_dir(path)) {
            return;
        }
        throw SysError("mkdir", path, ENOTDIR);
    }
    if (errno != ENOENT) {
        throw_errno("mkdir", path);
    }
    std::string parent = dirname(path);
    if (parent != path) {
        mkdirs(parent, mode);
    }
    if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
        throw_errno("mkdir", path);
    }
}

namespace {
std::vector<std::string> read_names(DIR* d) {
    std::vector<std::string> names;
    while (auto* e = ::readdir(d)) {
        std::string_view n = e->d_name;
        if (n != "." && n != "..") {
            names.emplace_back(n);
        }
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
}
} // namespace

std::vector<std::string> list_dir(const std::string& path) {
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) {
        if (errno == ENOENT) {
            return {};
        }
        throw_errno("opendir", path);
    }
    return read_names(d);
}

std::vector<std::string> list_dir_at(int dirfd) {
    int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) {
        throw_errno("dup");
    }
    DIR* d = ::fdopendir(dup);
    if (d == nullptr) {
        ::close(dup);
        throw_errno("opendir");
    }
    return read_names(d);
}

bool exists(const std::string& path) {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
}

bool is_dir(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

struct stat lstat(const std::string& path) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
        throw_errno("lstat", path);
    }
    return st;
}

struct stat fstat(int fd) {
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        throw_errno("fstat");
    }
    return st;
}

namespace {

void remove_children(int dirfd, const std::string& where, dev_t dev);

void remove_entry(int dirfd, const char* name, const std::string& where, dev_t dev) {
    if (::unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) {
        return;
    }
    if (errno != EISDIR && errno != EPERM) {
        throw SysError("unlink", where + "/" + name, errno);
    }
    int fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        throw SysError("open", where + "/" + name, errno);
    }
    UniqueFd sub(fd);
    struct stat st = fs::fstat(sub.get());
    if (st.st_dev != dev) {
        throw SysError("remove", where + "/" + name, EBUSY);
    }
    // Directories without write or search permission (e.g. mode 000) still
    // belong to us; make them removable.
    if ((st.st_mode & 0700) != 0700) {
        ::fchmod(sub.get(), st.st_mode | 0700);
    }
    remove_children(sub.get(), where + "/" + name, dev);
    sub.reset();
    if (::unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
        throw SysError("rmdir", where + "/" + name, errno);
    }
}

void remove_children(int dirfd, const std::string& where, dev_t dev) {
    int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) {
        throw_errno("dup", where);
    }
    DIR* dir = ::fdopendir(dup);
    if (dir == nullptr) {
        ::close(dup);
        throw_errno("opendir", where);
    }
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(dir)) {
        std::string_view n = e->d_name;
        if (n != "." && n != "..") {
            names.emplace_back(n);
        }
    }
    ::closedir(dir);
    for (const auto& n : names) {
        remove_entry(dirfd, n.c_str(), where, dev);
    }
}

} // namespace

void remove_all_at(int dirfd, const std::string& name) {
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) {
            return;
        }
        throw_errno("lstat", name);
    }
    remove_entry(dirfd, name.c_str(), ".", st.st_dev);
}

void remove_all(const std::string& path) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) {
            return;
        }
        throw_errno("lstat", path);
    }
    if (!S_ISDIR(st.st_mode)) {
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
            throw_errno("unlink", path);
        }
        return;
    }
    UniqueFd parent = open(dirname(path), O_RDONLY | O_DIRECTORY);
    std::string name = basename(path);
    remove_entry(parent.get(), name.c_str(), dirname(path), st.st_dev);
}

void fsync_dir(const std::string& path) {
    UniqueFd fd = open(path, O_RDONLY | O_DIRECTORY);
    if (::fsync(fd.get()) != 0) {
        throw_errno("fsync", path);
    }
}

std::string dirname(std::string_view path) {
    while (path.size() > 1 && path.back() == '/') {
        path.remove_suffix(1);
    }
    auto slash = path.rfind('/');
    if (slash == std::string_view::npos) {
        return ".";
    }
    if (slash == 0) {
        return "/";
    }
    return std::string(path.substr(0, slash));
}

std::pair<std::string, std::string> split_parent(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) {
        return {"", path};
    }
    return {path.substr(0, slash), path.substr(slash + 1)};
}

namespace {

// read_xattrs' loop over list(buf, size) and get(name, buf, size), as
// llistxattr/lgetxattr or flistxattr/fgetxattr.
template <typename List, typename Get>
std::map<std::string, std::string> read_xattrs_with(const List& list, const Get& get,
                                                    const std::string& shown) {
    std::map<std::string, std::string> out;
    std::vector<char> names(1024);
    ssize_t n;
    while ((n = list(names.data(), names.size())) < 0) {
        if (errno == ERANGE) {
            names.resize(names.size() * 4);
            continue;
        }
        if (errno == ENOTSUP) {
            return out;
        }
        throw_errno("listxattr", shown);
    }
    std::vector<char> value(256);
    for (std::size_t i = 0; i < static_cast<std::size_t>(n);) {
        std::string name(names.data() + i);
        i += name.size() + 1;
        if (name.empty()) {
            continue;
        }
        for (;;) {
            ssize_t v = get(name.c_str(), value.data(), value.size());
            if (v >= 0) {
                out.emplace(name, std::string(value.data(), static_cast<std::size_t>(v)));
                break;
            }
            if (errno == ERANGE) {
                value.resize(value.size() * 4);
                continue;
            }
            if (errno == ENODATA) {
                break; // removed meanwhile
            }
            throw_errno("getxattr " + name, shown);
        }
    }
    return out;
}

} // namespace

std::map<std::string, std::string> read_xattrs(const std::string& path) {
    return read_xattrs_with(
        [&](char* buf, std::size_t size) { return ::llistxattr(path.c_str(), buf, size); },
        [&](const char* name, char* buf, std::size_t size) {
            return ::lgetxattr(path.c_str(), name, buf, size);
        },
        path);
}

std::map<std::string, std::string> read_xattrs(int fd, const std::string& shown) {
    return read_xattrs_with(
        [&](char* buf, std::size_t size) { return ::flistxattr(fd, buf, size); },
        [&](const char* name, char* buf, std::size_t size) {
            return ::fgetxattr(fd, name, buf, size);
        },
        shown);
}

std::string basename(std::string_view path) {
    while (path.size() > 1 && path.back() == '/') {
        path.remove_suffix(1);
    }
    auto slash = path.rfind('/');
    return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string join(std::string_view a, std::string_view b) {
    if (a.empty()) {
        return std::string(b);
    }
    std::string out(a);
    while (!out.empty() && out.back() == '/') {
        out.pop_back();
    }
    while (!b.empty() && b.front() == '/') {
        b.remove_prefix(1);
    }
    out += '/';
    out += b;
    return out;
}

std::string absolute(const std::string& path) {
    if (!path.empty() && path[0] == '/') {
        return path;
    }
    char buf[PATH_MAX];
    if (::getcwd(buf, sizeof buf) == nullptr) {
        throw_errno("getcwd");
    }
    return path.empty() || path == "." ? std::string(buf) : join(buf, path);
}

namespace {
void usage_at(int dirfd, Usage& u) {
    int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) {
        throw_errno("dup");
    }
    DIR* dir = ::fdopendir(dup);
    if (dir == nullptr) {
        ::close(dup);
        throw_errno("opendir");
    }
    std::vector<std::string> subdirs;
    while (struct dirent* e = ::readdir(dir)) {
        std::string_view n = e->d_name;
        if (n == "." || n == "..") {
            continue;
        }
        struct stat st;
        if (::fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            continue;
        }
        u.files++;
        if (S_ISREG(st.st_mode)) {
            u.bytes += static_cast<std::uint64_t>(st.st_size);
        } else if (S_ISDIR(st.st_mode)) {
            subdirs.emplace_back(n);
        }
    }
    ::closedir(dir);
    for (const auto& s : subdirs) {
        int fd = ::openat(dirfd, s.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            UniqueFd sub(fd);
            usage_at(sub.get(), u);
        }
    }
}
} // namespace

Usage disk_usage(const std::string& path) {
    Usage u;
    UniqueFd fd = open(path, O_RDONLY | O_DIRECTORY);
    usage_at(fd.get(), u);
    return u;
}

} // namespace strata::fs
