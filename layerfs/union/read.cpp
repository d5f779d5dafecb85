// Operations that read a resolved node: attributes, symlinks, open and read
// fds, statfs, extended attributes.

#include "layerfs/union/fs.hpp"

#include <cerrno>
#include <climits>
#include <fcntl.h>
#include <sys/xattr.h>

namespace strata::layerfs::unionfs {

namespace {

// Cached read fds (read-only mode opens files without FUSE_OPEN) are capped
// well below the machine's NOFILE limit (20000 hard on our CI machines).
constexpr int k_max_cached_fds = 4096;

} // namespace

int Fs::getattr(fuse_ino_t ino, fuse_file_info* fi, struct stat& st) {
    if (fi != nullptr && fi->fh != 0 && !m_no_open) {
        if (::fstat(static_cast<int>(fi->fh), &st) == 0) {
            std::lock_guard lock(m_tree);
            fix_attr(node_of(ino), st);
            return 0;
        }
    }
    std::lock_guard lock(m_tree);
    Node* n = node_of(ino);
    if (n == m_root) {
        if (::fstat(root_fd(0), &st) < 0) {
            return errno;
        }
        if (m_layers.size() > 1) {
            st.st_nlink = 1;
        }
        st.st_ino = FUSE_ROOT_ID;
        return 0;
    }
    if (::fstatat(root_fd(n->layer), path_of(n).c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
        return errno;
    }
    fix_attr(n, st);
    return 0;
}

int Fs::readlink(fuse_ino_t ino, std::string& out) {
    std::string path;
    int layer;
    {
        std::lock_guard lock(m_tree);
        Node* n = node_of(ino);
        path = path_of(n);
        layer = n->layer;
    }
    char buf[PATH_MAX + 1];
    ssize_t r = ::readlinkat(root_fd(layer), path.c_str(), buf, sizeof buf);
    if (r < 0) {
        return errno;
    }
    if (static_cast<std::size_t>(r) > PATH_MAX) {
        return ENAMETOOLONG;
    }
    out.assign(buf, static_cast<std::size_t>(r));
    return 0;
}

int Fs::open(fuse_ino_t ino, fuse_file_info* fi, UniqueFd& fd) {
    if (m_no_open) {
        return ENOSYS; // the kernel stops sending FUSE_OPEN and keeps the page cache
    }
    int flags = fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_APPEND);
    bool write = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC) != 0;
    if (write && !m_writable) {
        return EROFS;
    }
    std::string path;
    int layer;
    {
        std::lock_guard lock(m_tree);
        Node* n = node_of(ino);
        if (write) {
            int err = copy_up(n);
            if (err != 0) {
                return err;
            }
        }
        path = path_of(n);
        layer = n->layer;
    }
    fd.reset(::openat(root_fd(layer), path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) {
        return errno;
    }
    fi->fh = static_cast<std::uint64_t>(fd.get());
    fi->keep_cache = 1;
    return 0;
}

int Fs::read_fd(fuse_ino_t ino, fuse_file_info* fi, int& fd, UniqueFd& owned) {
    if (!m_no_open) {
        fd = static_cast<int>(fi->fh);
        return 0;
    }
    Node* n = node_of(ino);
    fd = n->read_fd.get();
    if (fd >= 0) {
        return 0;
    }
    std::string path;
    int layer;
    {
        std::lock_guard lock(m_tree);
        path = path_of(n);
        layer = n->layer;
    }
    UniqueFd opened(::openat(root_fd(layer), path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!opened) {
        return errno;
    }
    if (m_cached_fds.fetch_add(1) < k_max_cached_fds) {
        auto [cached, installed] = n->read_fd.install(std::move(opened));
        fd = cached;
        if (!installed) {
            --m_cached_fds; // another reader cached one first
        }
        return 0;
    }
    --m_cached_fds;
    fd = opened.get();
    owned = std::move(opened);
    return 0;
}

int Fs::statfs(struct statvfs& st) {
    if (::fstatvfs(root_fd(0), &st) < 0) {
        return errno;
    }
    return 0;
}

int Fs::getxattr(fuse_ino_t ino, const char* name, std::size_t size, std::string& out,
                 std::size_t& needed) {
    if (wh::is_overlay_xattr(name)) {
        return ENODATA;
    }
    std::string p;
    {
        std::lock_guard lock(m_tree);
        Node* n = node_of(ino);
        p = proc_path(n->layer, path_of(n));
    }
    if (size == 0) {
        ssize_t r = ::lgetxattr(p.c_str(), name, nullptr, 0);
        if (r < 0) {
            return errno;
        }
        needed = static_cast<std::size_t>(r);
        return 0;
    }
    out.resize(size);
    ssize_t r = ::lgetxattr(p.c_str(), name, out.data(), size);
    if (r < 0) {
        return errno;
    }
    out.resize(static_cast<std::size_t>(r));
    return 0;
}

int Fs::listxattr(fuse_ino_t ino, std::size_t size, std::string& out, std::size_t& needed) {
    std::string p;
    {
        std::lock_guard lock(m_tree);
        Node* n = node_of(ino);
        p = proc_path(n->layer, path_of(n));
    }
    std::string raw;
    for (;;) {
        ssize_t r = ::llistxattr(p.c_str(), nullptr, 0);
        if (r < 0) {
            return errno;
        }
        raw.resize(static_cast<std::size_t>(r));
        r = ::llistxattr(p.c_str(), raw.data(), raw.size());
        if (r >= 0) {
            raw.resize(static_cast<std::size_t>(r));
            break;
        }
        if (errno != ERANGE) {
            return errno;
        }
    }
    std::string filtered;
    for (std::size_t i = 0; i < raw.size();) {
        std::size_t end = raw.find('\0', i);
        if (end == std::string::npos) {
            end = raw.size();
        }
        std::string_view n(raw.data() + i, end - i);
        if (!n.empty() && !wh::is_overlay_xattr(n)) {
            filtered.append(n);
            filtered += '\0';
        }
        i = end + 1;
    }
    needed = filtered.size();
    if (size == 0) {
        return 0;
    }
    if (filtered.size() > size) {
        return ERANGE;
    }
    out = std::move(filtered);
    return 0;
}

} // namespace strata::layerfs::unionfs
