// Writable mode: copying entries up into the upper layer (through the work
// directory), whiteouts and opaque markers in the upper layer.

#include "layerfs/union/fs.hpp"

#include "util/fs.hpp"
#include "util/log.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fcntl.h>
#include <sys/xattr.h>

namespace strata::layerfs::unionfs {

std::string Fs::temp_name() {
    return "#strata-" + std::to_string(::getpid()) + "-" + std::to_string(++m_tmp_counter);
}

int Fs::copy_file_data(int src, int dst) const {
    for (;;) {
        ssize_t n = ::copy_file_range(src, nullptr, dst, nullptr, 1 << 30, 0);
        if (n == 0) {
            return 0;
        }
        if (n > 0) {
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
            return errno;
        }
        break; // fall back to read/write
    }
    std::vector<char> buf(1 << 20);
    for (;;) {
        ssize_t n = ::read(src, buf.data(), buf.size());
        if (n == 0) {
            return 0;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        ssize_t done = 0;
        while (done < n) {
            ssize_t w = ::write(dst, buf.data() + done, static_cast<std::size_t>(n - done));
            if (w < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return errno;
            }
            done += w;
        }
    }
}

void Fs::copy_xattrs(int src_layer, const std::string& src, const std::string& dst_proc) const {
    std::string sp = proc_path(src_layer, src);
    ssize_t len = ::llistxattr(sp.c_str(), nullptr, 0);
    if (len <= 0) {
        return;
    }
    std::string names(static_cast<std::size_t>(len), '\0');
    len = ::llistxattr(sp.c_str(), names.data(), names.size());
    if (len <= 0) {
        return;
    }
    names.resize(static_cast<std::size_t>(len));
    for (std::size_t i = 0; i < names.size();) {
        std::string name = names.c_str() + i;
        i += name.size() + 1;
        if (name.empty() || wh::is_overlay_xattr(name)) {
            continue;
        }
        ssize_t vlen = ::lgetxattr(sp.c_str(), name.c_str(), nullptr, 0);
        if (vlen < 0) {
            continue;
        }
        std::string value(static_cast<std::size_t>(vlen), '\0');
        vlen = ::lgetxattr(sp.c_str(), name.c_str(), value.data(), value.size());
        if (vlen < 0) {
            continue;
        }
        if (::lsetxattr(dst_proc.c_str(), name.c_str(), value.data(),
                        static_cast<std::size_t>(vlen), 0) < 0) {
            // e.g. trusted.* without CAP_SYS_ADMIN: overlayfs drops these too.
            STRATA_LOG_DEBUG("copy-up of \"{}\": xattr {} not copied: {}", src, name,
                             std::strerror(errno));
        }
    }
}

int Fs::copy_up(Node* n) {
    if (!m_writable) {
        return EROFS;
    }
    if (n == m_root || n->layer == 0) {
        return 0;
    }
    if (n->parent == nullptr) {
        return ENOENT;
    }
    int err = copy_up(n->parent);
    if (err != 0) {
        return err;
    }
    std::string rel = path_of(n);
    int src_root = root_fd(n->layer);
    struct stat st;
    if (::fstatat(src_root, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
        return errno;
    }
    std::string tmp = temp_name();
    int work = m_work.get();
    // Build the copy in the work directory, then rename it into place, so a
    // half-copied file is never visible in the upper layer.
    auto cleanup = [&] { ::unlinkat(work, tmp.c_str(), S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0); };
    if (S_ISREG(st.st_mode)) {
        int src = ::openat(src_root, rel.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (src < 0) {
            return errno;
        }
        UniqueFd src_fd(src);
        int dst = ::openat(work, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (dst < 0) {
            return errno;
        }
        UniqueFd dst_fd(dst);
        err = copy_file_data(src, dst);
        if (err != 0) {
            cleanup();
            return err;
        }
    } else if (S_ISDIR(st.st_mode)) {
        if (::mkdirat(work, tmp.c_str(), 0700) < 0) {
            return errno;
        }
    } else if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX + 1];
        ssize_t r = ::readlinkat(src_root, rel.c_str(), target, PATH_MAX);
        if (r < 0) {
            return errno;
        }
        target[r] = '\0';
        if (::symlinkat(target, work, tmp.c_str()) < 0) {
            return errno;
        }
    } else {
        if (::mknodat(work, tmp.c_str(), st.st_mode, st.st_rdev) < 0) {
            return errno;
        }
    }
    std::string work_proc = "/proc/self/fd/" + std::to_string(work) + "/" + tmp;
    copy_xattrs(n->layer, rel, work_proc);
    if (m_is_root && ::fchownat(work, tmp.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0) {
        err = errno;
        cleanup();
        return err;
    }
    if (!S_ISLNK(st.st_mode) && ::fchmodat(work, tmp.c_str(), st.st_mode & 07777, 0) < 0) {
        err = errno;
        cleanup();
        return err;
    }
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    ::utimensat(work, tmp.c_str(), times, AT_SYMLINK_NOFOLLOW);
    if (::renameat(work, tmp.c_str(), upper(), rel.c_str()) < 0) {
        err = errno;
        cleanup();
        return err;
    }
    struct stat ust;
    if (::fstatat(upper(), rel.c_str(), &ust, AT_SYMLINK_NOFOLLOW) < 0) {
        return errno;
    }
    STRATA_LOG_DEBUG("copy-up \"{}\" from layer {}", rel, n->layer);
    n->layer = 0;
    // Other names of a lower hard link still name the lower file, which is
    // no longer this node's file (overlayfs with index=off does the same).
    clear_aliases(n);
    if (S_ISDIR(st.st_mode)) {
        n->dir_layers.insert(n->dir_layers.begin(), 0);
    }
    rekey(n, key_of(0, ust));
    return 0;
}

// Copies a directory and everything below it into the upper layer and makes
// it opaque, so it can move to a place where the lower layers do not follow.
int Fs::copy_up_tree(Node* n) {
    int err = copy_up(n);
    if (err != 0) {
        return err;
    }
    bool merged =
        std::any_of(n->dir_layers.begin(), n->dir_layers.end(), [](int k) { return k != 0; });
    if (!merged) {
        return 0;
    }
    std::string rel = path_of(n);
    std::vector<DirEntry> entries;
    err = list_dir(n->dir_layers, rel, entries);
    if (err != 0) {
        return err;
    }
    for (const auto& de : entries) {
        bool is_dir = S_ISDIR(de.st.st_mode);
        if (de.layer == 0 && !is_dir) {
            continue;
        }
        Found f;
        err = resolve(n, rel, de.name, f);
        if (err != 0) {
            return err;
        }
        Node* child = get_node(n, de.name, f); // a temporary reference
        err = is_dir ? copy_up_tree(child) : copy_up(child);
        unref(child, 1);
        if (err != 0) {
            return err;
        }
    }
    err = set_opaque(rel);
    if (err != 0) {
        return err;
    }
    n->dir_layers.assign(1, 0);
    return 0;
}

int Fs::set_opaque(const std::string& rel) {
    std::string p = proc_path(0, rel);
    if (!m_oci_whiteouts.load() &&
        ::lsetxattr(p.c_str(), wh::k_trusted_opaque, wh::k_opaque_value.data(),
                    wh::k_opaque_value.size(), 0) == 0) {
        return 0;
    }
    if (::lsetxattr(p.c_str(), wh::k_user_opaque, wh::k_opaque_value.data(),
                    wh::k_opaque_value.size(), 0) == 0) {
        return 0;
    }
    // Last resort, the OCI marker file.
    UniqueFd fd(::openat(upper(), join_rel(rel, wh::k_opaque_marker).c_str(),
                         O_WRONLY | O_CREAT | O_CLOEXEC, 0000));
    return fd ? 0 : errno;
}

int Fs::make_whiteout(const std::string& rel) {
    if (!m_oci_whiteouts.load()) {
        if (::mknodat(upper(), rel.c_str(), wh::k_device_mode, wh::device()) == 0) {
            return 0;
        }
        if (errno != EPERM) {
            return errno;
        }
        STRATA_LOG_DEBUG("mknod of a whiteout refused, writing .wh. files instead");
        m_oci_whiteouts = true;
    }
    std::string dir = fs::dirname(rel);
    std::string name = wh::oci_name(fs::basename(rel));
    UniqueFd fd(::openat(upper(), dir.empty() ? name.c_str() : join_rel(dir, name).c_str(),
                         O_WRONLY | O_CREAT | O_CLOEXEC, 0000));
    return fd ? 0 : errno;
}

int Fs::remove_upper_whiteout(const std::string& dir, const std::string& name, bool& had) {
    had = false;
    std::string rel = join_rel(dir, name);
    struct stat st;
    if (::fstatat(upper(), rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && wh::is_device(st)) {
        if (::unlinkat(upper(), rel.c_str(), 0) < 0) {
            return errno;
        }
        had = true;
    }
    std::string oci = join_rel(dir, wh::oci_name(name));
    if (::unlinkat(upper(), oci.c_str(), 0) == 0) {
        had = true;
    } else if (errno != ENOENT) {
        return errno;
    }
    return 0;
}

// Empties an upper directory that the merged view shows as empty: it can
// only hold whiteouts.
int Fs::clear_upper_dir(const std::string& rel) {
    DirPtr dir;
    if (int err = open_dir(upper(), rel, dir); err != 0) {
        return err == ENOENT ? 0 : err;
    }
    DIR* d = dir.get();
    std::vector<std::string> names;
    while (auto* de = ::readdir(d)) {
        std::string n = de->d_name;
        if (n != "." && n != "..") {
            names.push_back(n);
        }
    }
    int err = 0;
    for (const auto& n : names) {
        if (::unlinkat(::dirfd(d), n.c_str(), 0) < 0 && errno != ENOENT) {
            err = errno;
            break;
        }
    }
    return err;
}

} // namespace strata::layerfs::unionfs
