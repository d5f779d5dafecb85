#include "containers/copy.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/root.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace strata::containers {

using formats::EntryType;
using formats::TarEntry;

namespace {

std::string proc_fd(int fd) {
    return "/proc/self/fd/" + std::to_string(fd);
}

// The components of an entry's name; ".." is refused, "." and "" dropped.
std::string checked_rel(const std::string& name, const std::string& shown) {
    std::string out;
    std::size_t pos = 0;
    while (pos <= name.size()) {
        std::size_t slash = name.find('/', pos);
        if (slash == std::string::npos) {
            slash = name.size();
        }
        std::string comp = name.substr(pos, slash - pos);
        pos = slash + 1;
        if (comp.empty() || comp == ".") {
            continue;
        }
        if (comp == "..") {
            throw Error(shown + ": entry \"" + name + "\" leaves the destination (\"..\")");
        }
        out += out.empty() ? comp : "/" + comp;
    }
    return out;
}

TarEntry entry_of(const struct stat& st, const std::string& path) {
    TarEntry e;
    e.path = path;
    e.mode = st.st_mode & 07777;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.mtime_sec = st.st_mtim.tv_sec;
    e.mtime_nsec = static_cast<std::uint32_t>(st.st_mtim.tv_nsec);
    switch (st.st_mode & S_IFMT) {
    case S_IFREG:
        e.type = EntryType::file;
        e.size = static_cast<std::uint64_t>(st.st_size);
        break;
    case S_IFDIR:
        e.type = EntryType::dir;
        break;
    case S_IFLNK:
        e.type = EntryType::symlink;
        break;
    case S_IFCHR:
        e.type = EntryType::chardev;
        break;
    case S_IFBLK:
        e.type = EntryType::blockdev;
        break;
    case S_IFIFO:
        e.type = EntryType::fifo;
        break;
    default:
        break;
    }
    e.devmajor = major(st.st_rdev);
    e.devminor = minor(st.st_rdev);
    return e;
}

std::string read_link_at(int dirfd, const char* name, const std::string& shown) {
    std::vector<char> buf(4096);
    ssize_t n = ::readlinkat(dirfd, name, buf.data(), buf.size());
    if (n < 0) {
        throw_errno("readlink", shown);
    }
    return std::string(buf.data(), static_cast<std::size_t>(n));
}

std::vector<std::string> sorted_names(int dirfd, const std::string& shown) {
    int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        throw_errno("open", shown);
    }
    DIR* d = ::fdopendir(fd);
    if (d == nullptr) {
        ::close(fd);
        throw_errno("opendir", shown);
    }
    std::vector<std::string> names;
    while (auto* de = ::readdir(d)) {
        std::string n = de->d_name;
        if (n != "." && n != "..") {
            names.push_back(std::move(n));
        }
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
}

struct Walker {
    const std::function<void(const TarEntry&, int)>& visit;
    std::map<std::pair<dev_t, ino_t>, std::string> links;

    // name's entry: dirfd + base (AT_SYMLINK_NOFOLLOW), st already read.
    void entry(int dirfd, const char* base, const struct stat& st, const std::string& path,
               const std::string& shown) {
        TarEntry e = entry_of(st, path);
        if (S_ISSOCK(st.st_mode)) {
            return; // cannot be copied (Docker skips them too)
        }
        if (S_ISLNK(st.st_mode)) {
            e.linkname = read_link_at(dirfd, base, shown);
        }
        if (S_ISREG(st.st_mode)) {
            if (st.st_nlink > 1) {
                auto key = std::make_pair(st.st_dev, st.st_ino);
                if (auto it = links.find(key); it != links.end()) {
                    e.type = EntryType::hardlink;
                    e.linkname = it->second;
                    e.size = 0;
                    visit(e, -1);
                    return;
                }
                links.emplace(key, path);
            }
            UniqueFd f(::openat(dirfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY));
            if (!f) {
                throw_errno("open", shown);
            }
            visit(e, f.get());
            return;
        }
        visit(e, -1);
        if (S_ISDIR(st.st_mode)) {
            UniqueFd d(::openat(dirfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
            if (!d) {
                throw_errno("open", shown);
            }
            children(d.get(), path, shown);
        }
    }

    void children(int dfd, const std::string& path, const std::string& shown) {
        for (const auto& n : sorted_names(dfd, shown)) {
            struct stat cst;
            if (::fstatat(dfd, n.c_str(), &cst, AT_SYMLINK_NOFOLLOW) != 0) {
                throw_errno("stat", shown + "/" + n);
            }
            entry(dfd, n.c_str(), cst, path.empty() ? n : path + "/" + n, shown + "/" + n);
        }
    }
};

bool same_type(const struct stat& st, EntryType t) {
    switch (t) {
    case EntryType::file:
    case EntryType::hardlink:
        return S_ISREG(st.st_mode);
    case EntryType::dir:
        return S_ISDIR(st.st_mode);
    case EntryType::symlink:
        return S_ISLNK(st.st_mode);
    case EntryType::chardev:
        return S_ISCHR(st.st_mode);
    case EntryType::blockdev:
        return S_ISBLK(st.st_mode);
    case EntryType::fifo:
        return S_ISFIFO(st.st_mode);
    }
    return false;
}

} // namespace

CopySource open_copy_source(int root_fd, const std::string& path, bool follow,
                            const std::string& shown_prefix) {
    CopySource src;
    src.shown = path;
    std::string p = path;
    if (p == "." || p.ends_with("/.")) {
        src.contents_only = true;
        p = p.size() > 1 ? p.substr(0, p.size() - 1) : "/";
    }
    bool trailing_slash = p.size() > 1 && p.ends_with('/');
    std::string cleaned = clean_path(p.empty() ? "/" : p);
    bool is_root = cleaned == "/" || cleaned == ".";
    int flags = O_PATH | O_CLOEXEC;
    if (!follow && !trailing_slash && !is_root) {
        flags |= O_NOFOLLOW;
    }
    try {
        src.fd = open_in_root(root_fd, is_root ? "." : cleaned, flags);
    } catch (const SysError& e) {
        if (e.error_code() == ENOENT || e.error_code() == ENOTDIR) {
            if (!shown_prefix.empty()) {
                throw Error("Could not find the file " + path + " in " + shown_prefix);
            }
            throw Error("lstat " + path + ": no such file or directory");
        }
        throw;
    }
    struct stat st = fs::fstat(src.fd.get());
    src.is_dir = S_ISDIR(st.st_mode);
    if ((trailing_slash || src.contents_only) && !src.is_dir) {
        throw Error(path + ": not a directory");
    }
    src.base = is_root ? "rootfs" : fs::basename(cleaned);
    return src;
}

CopyTarget resolve_copy_target(int root_fd, const std::string& dest, bool src_is_dir,
                               bool contents_only, const std::string& src_base,
                               const std::string& shown_prefix, const std::string& shown_dest) {
    CopyTarget t;
    const std::string& as_typed = shown_dest.empty() ? dest : shown_dest;
    t.shown = shown_prefix + as_typed;
    std::string cleaned = clean_path(dest.empty() ? "." : dest);
    bool trailing_slash = dest.size() > 1 && dest.ends_with('/');
    std::optional<struct stat> st;
    UniqueFd fd;
    try {
        fd = open_in_root(root_fd, cleaned, O_PATH | O_CLOEXEC);
        st = fs::fstat(fd.get());
    } catch (const SysError& e) {
        if (e.error_code() != ENOENT) {
            throw;
        }
    }
    if (st && S_ISDIR(st->st_mode)) {
        t.dir = open_in_root(root_fd, cleaned, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        t.name = contents_only ? "" : src_base;
        return t;
    }
    if (st) {
        if (src_is_dir) {
            throw Error("cannot copy directory " + src_base + " onto " + t.shown +
                        ", which exists and is not a directory");
        }
        if (trailing_slash) {
            throw Error(t.shown + ": not a directory");
        }
    } else if (trailing_slash && !src_is_dir) {
        throw Error("destination directory " + t.shown + " does not exist");
    }
    std::string parent = fs::dirname(cleaned);
    std::string name = fs::basename(cleaned);
    if (name.empty() || name == "/" || name == "." || name == "..") {
        throw Error("destination " + t.shown + " is not a usable name");
    }
    try {
        t.dir = open_in_root(root_fd, parent.empty() ? "." : parent,
                             O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } catch (const SysError& e) {
        if (e.error_code() == ENOENT || e.error_code() == ENOTDIR) {
            throw Error("destination directory " + shown_prefix + fs::dirname(as_typed) +
                        " does not exist");
        }
        throw;
    }
    t.name = name;
    return t;
}

std::string host_absolute(const std::string& path) {
    if (path.starts_with('/')) {
        return path;
    }
    char buf[PATH_MAX];
    if (::getcwd(buf, sizeof buf) == nullptr) {
        throw_errno("getcwd", path);
    }
    return std::string(buf) + "/" + path;
}

void walk_copy_source(const CopySource& src, const std::string& name,
                      const std::function<void(const TarEntry&, int)>& visit) {
    struct stat st = fs::fstat(src.fd.get());
    Walker w{visit, {}};
    if (S_ISLNK(st.st_mode)) {
        TarEntry e = entry_of(st, name);
        e.linkname = read_link_at(src.fd.get(), "", src.shown);
        visit(e, -1);
        return;
    }
    if (S_ISREG(st.st_mode)) {
        UniqueFd f = fs::open(proc_fd(src.fd.get()), O_RDONLY | O_NOCTTY);
        visit(entry_of(st, name), f.get());
        return;
    }
    if (!name.empty()) {
        visit(entry_of(st, name), -1);
    }
    if (S_ISDIR(st.st_mode)) {
        UniqueFd d = fs::open(proc_fd(src.fd.get()), O_RDONLY | O_DIRECTORY);
        w.children(d.get(), name, src.shown);
    }
}

// ---------------------------------------------------------------- writer

TreeWriter::TreeWriter(int dir_fd, std::string shown, bool keep_owner)
    : m_dir(dir_fd), m_shown(std::move(shown)), m_keep_owner(keep_owner),
      m_as_root(::geteuid() == 0) {}

UniqueFd TreeWriter::create(const TarEntry& e, std::string& rel) {
    rel = checked_rel(e.path, m_shown);
    if (rel.empty()) {
        if (e.type != EntryType::dir) {
            throw Error(m_shown + ": entry \"" + e.path + "\" has no name");
        }
        return {}; // the destination directory itself
    }
    std::string where = m_shown + "/" + rel;
    if (e.type == EntryType::dir) {
        mkdirs_in_root(m_dir, rel, 0700);
        m_done.push_back(Done{rel, e});
        ++m_stats.entries;
        return {};
    }
    if (rel.find('/') != std::string::npos) {
        mkdirs_in_root(m_dir, fs::dirname(rel), 0755);
    }
    ParentRef p = open_parent_in_root(m_dir, rel);
    if (::unlinkat(p.dir.get(), p.name.c_str(), 0) != 0 && errno != ENOENT) {
        if (errno == EISDIR) {
            throw Error("cannot overwrite directory " + where + " with non-directory");
        }
        throw_errno("unlink", where);
    }
    UniqueFd out;
    switch (e.type) {
    case EntryType::file:
        out = UniqueFd(::openat(p.dir.get(), p.name.c_str(),
                                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!out) {
            throw_errno("create", where);
        }
        break;
    case EntryType::symlink:
        if (::symlinkat(e.linkname.c_str(), p.dir.get(), p.name.c_str()) != 0) {
            throw_errno("symlink", where);
        }
        break;
    case EntryType::hardlink: {
        std::string target = checked_rel(e.linkname, m_shown);
        if (target.empty()) {
            throw Error(m_shown + ": hard link \"" + e.path + "\" has no target");
        }
        ParentRef s = open_parent_in_root(m_dir, target);
        if (::linkat(s.dir.get(), s.name.c_str(), p.dir.get(), p.name.c_str(), 0) != 0) {
            throw_errno("link to " + target, where);
        }
        ++m_stats.entries;
        return {}; // shares its target's metadata
    }
    case EntryType::fifo:
        if (::mkfifoat(p.dir.get(), p.name.c_str(), 0600) != 0) {
            throw_errno("mkfifo", where);
        }
        break;
    case EntryType::chardev:
    case EntryType::blockdev:
        if (!m_as_root) {
            ++m_stats.devices_skipped;
            return {};
        }
        if (::mknodat(p.dir.get(), p.name.c_str(),
                      (e.type == EntryType::chardev ? S_IFCHR : S_IFBLK) | 0600,
                      makedev(e.devmajor, e.devminor)) != 0) {
            throw_errno("mknod", where);
        }
        break;
    case EntryType::dir:
        break;
    }
    m_done.push_back(Done{rel, e});
    ++m_stats.entries;
    return out;
}

void TreeWriter::add(const TarEntry& e, int content_fd) {
    std::string rel;
    UniqueFd out = create(e, rel);
    if (out && content_fd >= 0) {
        char buf[1 << 16];
        for (;;) {
            ssize_t n = ::read(content_fd, buf, sizeof buf);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                throw_errno("read", e.path);
            }
            if (n == 0) {
                break;
            }
            fs::write_all(out.get(), m_shown + "/" + rel, buf, static_cast<std::size_t>(n));
        }
    }
}

void TreeWriter::add_stream(const TarEntry& e,
                            const std::function<std::size_t(void*, std::size_t)>& read) {
    std::string rel;
    UniqueFd out = create(e, rel);
    char buf[1 << 16];
    std::size_t n;
    while ((n = read(buf, sizeof buf)) > 0) {
        if (out) {
            fs::write_all(out.get(), m_shown + "/" + rel, buf, n);
        }
    }
}

UniqueFd TreeWriter::open_file(const std::string& rel) const {
    return open_in_root(m_dir, rel, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
}

void TreeWriter::finish() {
    for (auto it = m_done.rbegin(); it != m_done.rend(); ++it) {
        const TarEntry& e = it->meta;
        std::string where = m_shown + "/" + it->rel;
        // The entry, resolved inside the destination (a symlink there is
        // followed inside it, never out), checked to be of the type made: an
        // O_PATH fd, used through /proc/self/fd below.
        bool is_link = e.type == EntryType::symlink;
        UniqueFd fd = open_in_root(m_dir, it->rel, O_PATH | O_CLOEXEC | (is_link ? O_NOFOLLOW : 0));
        if (!same_type(fs::fstat(fd.get()), e.type)) {
            throw Error(where + " was replaced while it was copied");
        }
        if (m_keep_owner &&
            ::fchownat(fd.get(), "", e.uid, e.gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
            throw_errno("chown " + std::to_string(e.uid) + ":" + std::to_string(e.gid), where);
        }
        struct timespec ts[2] = {{e.mtime_sec, static_cast<long>(e.mtime_nsec)},
                                 {e.mtime_sec, static_cast<long>(e.mtime_nsec)}};
        if (is_link) {
            ParentRef p = open_parent_in_root(m_dir, it->rel);
            if (::utimensat(p.dir.get(), p.name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
                throw_errno("utimensat", where);
            }
            continue;
        }
        // Through /proc/self/fd: the inode the fd holds, whatever the path
        // names now.
        std::string self = proc_fd(fd.get());
        if (::chmod(self.c_str(), e.mode & 07777) != 0) {
            throw_errno("chmod", where);
        }
        if (::utimensat(AT_FDCWD, self.c_str(), ts, 0) != 0) {
            throw_errno("utimensat", where);
        }
    }
    m_done.clear();
}

void extract_tar(formats::TarReader& reader, TreeWriter& writer) {
    while (auto e = reader.next()) {
        if (e->type == EntryType::file && e->size > 0) {
            writer.add_stream(*e, [&](void* buf, std::size_t n) { return reader.read(buf, n); });
        } else {
            writer.add(*e);
        }
    }
    reader.finish();
}

} // namespace strata::containers
