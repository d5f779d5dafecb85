// Writable mode: the operations that change the union (create, link,
// unlink, rename, setattr, xattrs), each on the upper layer after copy-up.

#include "layerfs/union/fs.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/xattr.h>

namespace strata::layerfs::unionfs {

// setxattr and removexattr: copy the inode up, then change the upper copy with op
// (given its /proc path); internal_err for overlay's own xattrs.
template <typename Op>
int Fs::change_xattr(fuse_ino_t ino, const char* name, int internal_err, Op&& op) {
    if (!m_writable) {
        return EROFS;
    }
    if (wh::is_overlay_xattr(name)) {
        return internal_err;
    }
    std::lock_guard lock(m_tree);
    Node* n = node_of(ino);
    int err = copy_up(n);
    if (err != 0) {
        return err;
    }
    return op(proc_path(0, path_of(n)).c_str()) < 0 ? errno : 0;
}

int Fs::setxattr(fuse_ino_t ino, const char* name, const char* value, std::size_t size, int flags) {
    return change_xattr(ino, name, EPERM, [&](const char* path) {
        return ::lsetxattr(path, name, value, size, flags);
    });
}

int Fs::removexattr(fuse_ino_t ino, const char* name) {
    return change_xattr(ino, name, ENODATA,
                        [&](const char* path) { return ::lremovexattr(path, name); });
}

bool Fs::lower_has(const Node* parent, const std::string& parent_path,
                   const std::string& name) const {
    Found f;
    return resolve(parent, parent_path, name, f, true) == 0;
}

int Fs::make(fuse_ino_t parent_id, const char* name_c, mode_t mode, dev_t rdev,
             const char* link_target, const fuse_ctx* ctx, fuse_file_info* fi, UniqueFd& created,
             fuse_entry_param& e) {
    if (!m_writable) {
        return EROFS;
    }
    std::string name = name_c;
    if (wh::is_reserved(name)) {
        return EINVAL; // reserved for whiteouts
    }
    std::lock_guard lock(m_tree);
    Node* parent = node_of(parent_id);
    std::string dir = path_of(parent);
    Found existing;
    if (resolve(parent, dir, name, existing) == 0) {
        return EEXIST;
    }
    int err = copy_up(parent);
    if (err != 0) {
        return err;
    }
    bool had_whiteout = false;
    err = remove_upper_whiteout(dir, name, had_whiteout);
    if (err != 0) {
        return err;
    }
    std::string rel = join_rel(dir, name);
    int fd = -1;
    int r;
    if (link_target != nullptr) {
        r = ::symlinkat(link_target, upper(), rel.c_str());
    } else if (S_ISDIR(mode)) {
        r = ::mkdirat(upper(), rel.c_str(), mode & 07777);
    } else if (fi != nullptr) {
        int flags = (fi->flags & ~(O_APPEND | O_NOCTTY)) | O_CREAT | O_EXCL | O_CLOEXEC;
        r = fd = ::openat(upper(), rel.c_str(), flags, mode & 07777);
    } else {
        r = ::mknodat(upper(), rel.c_str(), mode, rdev);
    }
    if (r < 0) {
        err = errno;
        if (had_whiteout) {
            make_whiteout(rel);
        }
        return err;
    }
    UniqueFd fd_guard(fd);
    if (m_is_root && ctx != nullptr) {
        ::fchownat(upper(), rel.c_str(), ctx->uid, ctx->gid, AT_SYMLINK_NOFOLLOW);
    }
    if (S_ISDIR(mode) && had_whiteout) {
        // A whiteout was there: something of this name exists below, and a
        // new directory must not show its contents.
        err = set_opaque(rel);
        if (err != 0) {
            return err;
        }
    }
    err = entry_for(parent, dir, name, e);
    if (err != 0) {
        return err;
    }
    if (fi != nullptr) {
        fi->fh = static_cast<std::uint64_t>(fd_guard.get());
        fi->keep_cache = 1;
        created = std::move(fd_guard);
    }
    return 0;
}

int Fs::link(fuse_ino_t ino, fuse_ino_t newparent_id, const char* newname_c, fuse_entry_param& e) {
    if (!m_writable) {
        return EROFS;
    }
    std::string newname = newname_c;
    if (wh::is_reserved(newname)) {
        return EINVAL;
    }
    std::lock_guard lock(m_tree);
    Node* n = node_of(ino);
    Node* newparent = node_of(newparent_id);
    std::string dir = path_of(newparent);
    Found existing;
    if (resolve(newparent, dir, newname, existing) == 0) {
        return EEXIST;
    }
    int err = copy_up(n);
    if (err == 0) {
        err = copy_up(newparent);
    }
    if (err != 0) {
        return err;
    }
    dir = path_of(newparent);
    bool had = false;
    err = remove_upper_whiteout(dir, newname, had);
    if (err != 0) {
        return err;
    }
    std::string rel = join_rel(dir, newname);
    if (::linkat(upper(), path_of(n).c_str(), upper(), rel.c_str(), 0) < 0) {
        err = errno;
        if (had) {
            make_whiteout(rel);
        }
        return err;
    }
    // Same (dev, ino): the same node, with one more name.
    return entry_for(newparent, dir, newname, e);
}

int Fs::unlink(fuse_ino_t parent_id, const char* name_c, bool dir) {
    if (!m_writable) {
        return EROFS;
    }
    std::string name = name_c;
    std::lock_guard lock(m_tree);
    Node* parent = node_of(parent_id);
    std::string dpath = path_of(parent);
    Found f;
    int err = resolve(parent, dpath, name, f);
    if (err != 0) {
        return err;
    }
    bool is_dir = S_ISDIR(f.st.st_mode);
    if (dir && !is_dir) {
        return ENOTDIR;
    }
    if (!dir && is_dir) {
        return EISDIR;
    }
    std::string rel = join_rel(dpath, name);
    if (is_dir) {
        std::vector<DirEntry> entries;
        err = list_dir(f.dir_layers, rel, entries);
        if (err != 0) {
            return err;
        }
        if (!entries.empty()) {
            return ENOTEMPTY;
        }
    }
    err = copy_up(parent);
    if (err != 0) {
        return err;
    }
    dpath = path_of(parent);
    bool below = lower_has(parent, dpath, name);
    if (f.layer == 0) {
        if (is_dir) {
            err = clear_upper_dir(rel);
            if (err != 0) {
                return err;
            }
        }
        if (::unlinkat(upper(), rel.c_str(), is_dir ? AT_REMOVEDIR : 0) < 0) {
            return errno;
        }
    }
    if (below) {
        err = make_whiteout(rel);
        if (err != 0) {
            return err;
        }
    }
    auto it = m_nodes.find(key_of(f.layer, f.st));
    if (it != m_nodes.end()) {
        Node* victim = it->second;
        if (is_dir || f.st.st_nlink <= 1) {
            unhash(victim);
            victim->deleted = true;
        } else {
            drop_name(victim, parent, name);
        }
    }
    return 0;
}

int Fs::rename(fuse_ino_t parent_id, const char* name_c, fuse_ino_t newparent_id,
               const char* newname_c, unsigned flags) {
    if (!m_writable) {
        return EROFS;
    }
    if ((flags & ~static_cast<unsigned>(RENAME_NOREPLACE)) != 0) {
        return EINVAL; // RENAME_EXCHANGE / RENAME_WHITEOUT are not supported
    }
    std::string name = name_c;
    std::string newname = newname_c;
    if (wh::is_reserved(newname)) {
        return EINVAL;
    }
    std::lock_guard lock(m_tree);
    Node* parent = node_of(parent_id);
    Node* newparent = node_of(newparent_id);
    Found src;
    int err = resolve(parent, path_of(parent), name, src);
    if (err != 0) {
        return err;
    }
    Found dst;
    bool dst_exists = resolve(newparent, path_of(newparent), newname, dst) == 0;
    bool src_dir = S_ISDIR(src.st.st_mode);
    if (dst_exists) {
        if ((flags & RENAME_NOREPLACE) != 0) {
            return EEXIST;
        }
        if (key_of(src.layer, src.st) == key_of(dst.layer, dst.st)) {
            return 0; // the same file: rename(2) does nothing
        }
        bool dst_dir = S_ISDIR(dst.st.st_mode);
        if (src_dir && !dst_dir) {
            return ENOTDIR;
        }
        if (!src_dir && dst_dir) {
            return EISDIR;
        }
        if (dst_dir) {
            std::vector<DirEntry> entries;
            err = list_dir(dst.dir_layers, join_rel(path_of(newparent), newname), entries);
            if (err != 0) {
                return err;
            }
            if (!entries.empty()) {
                return ENOTEMPTY;
            }
        }
    }
    // Take a reference on the source so it has a node to copy up through,
    // under the name being renamed (a hard link has several).
    Node* n = get_node(parent, name, src);
    make_primary(n, parent, name);
    auto release = [&] { unref(n, 1); };
    err = src_dir ? copy_up_tree(n) : copy_up(n);
    if (err == 0) {
        err = copy_up(newparent);
    }
    if (err != 0) {
        release();
        return err;
    }
    std::string old_dir = path_of(parent);
    std::string new_dir = path_of(newparent);
    std::string old_rel = join_rel(old_dir, name);
    std::string new_rel = join_rel(new_dir, newname);
    bool old_below = lower_has(parent, old_dir, name);
    bool new_below = lower_has(newparent, new_dir, newname);
    bool had_whiteout = false;
    err = remove_upper_whiteout(new_dir, newname, had_whiteout);
    if (err == 0 && dst_exists && dst.layer == 0 && src_dir) {
        err = clear_upper_dir(new_rel);
    }
    if (err != 0) {
        release();
        return err;
    }
    if (::renameat(upper(), old_rel.c_str(), upper(), new_rel.c_str()) < 0) {
        err = errno;
        if (had_whiteout) {
            make_whiteout(new_rel);
        }
        release();
        return err;
    }
    if (src_dir && (new_below || had_whiteout)) {
        err = set_opaque(new_rel);
    }
    if (err == 0 && old_below) {
        err = make_whiteout(old_rel);
    }
    if (dst_exists) {
        auto it = m_nodes.find(key_of(dst.layer, dst.st));
        if (it != m_nodes.end() && it->second != n) {
            Node* victim = it->second;
            if (S_ISDIR(dst.st.st_mode) || dst.st.st_nlink <= 1) {
                unhash(victim);
                victim->deleted = true;
            } else {
                drop_name(victim, newparent, newname); // other hard links remain
            }
        }
    }
    if (n->parent == parent && n->name == name) {
        set_parent(n, newparent, newname);
    } else {
        drop_name(n, parent, name);
        add_name(n, newparent, newname);
    }
    if (src_dir) {
        n->dir_layers.assign(1, 0);
    }
    release();
    return err;
}

int Fs::setattr(fuse_ino_t ino, const struct stat& attr, int to_set, fuse_file_info* fi,
                struct stat& out) {
    if (!m_writable) {
        return EROFS;
    }
    std::lock_guard lock(m_tree);
    Node* n = node_of(ino);
    int err = copy_up(n);
    if (err != 0) {
        return err;
    }
    std::string rel = path_of(n);
    int fd = (fi != nullptr && fi->fh != 0) ? static_cast<int>(fi->fh) : -1;
    bool is_link = S_ISLNK(n->type);
    if ((to_set & FUSE_SET_ATTR_MODE) != 0) {
        int r = fd >= 0 ? ::fchmod(fd, attr.st_mode & 07777)
                        : ::fchmodat(upper(), rel.c_str(), attr.st_mode & 07777, 0);
        if (r < 0) {
            return errno;
        }
    }
    if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) != 0) {
        uid_t uid = (to_set & FUSE_SET_ATTR_UID) != 0 ? attr.st_uid : static_cast<uid_t>(-1);
        gid_t gid = (to_set & FUSE_SET_ATTR_GID) != 0 ? attr.st_gid : static_cast<gid_t>(-1);
        if (::fchownat(upper(), rel.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
            return errno;
        }
    }
    if ((to_set & FUSE_SET_ATTR_SIZE) != 0) {
        int r;
        if (fd >= 0) {
            r = ::ftruncate(fd, attr.st_size);
        } else {
            UniqueFd wfd(::openat(upper(), rel.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
            if (!wfd) {
                return errno;
            }
            r = ::ftruncate(wfd.get(), attr.st_size);
        }
        if (r < 0) {
            return errno;
        }
    }
    if ((to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) != 0) {
        struct timespec tv[2];
        tv[0].tv_nsec = UTIME_OMIT;
        tv[1].tv_nsec = UTIME_OMIT;
        if ((to_set & FUSE_SET_ATTR_ATIME_NOW) != 0) {
            tv[0].tv_nsec = UTIME_NOW;
        } else if ((to_set & FUSE_SET_ATTR_ATIME) != 0) {
            tv[0] = attr.st_atim;
        }
        if ((to_set & FUSE_SET_ATTR_MTIME_NOW) != 0) {
            tv[1].tv_nsec = UTIME_NOW;
        } else if ((to_set & FUSE_SET_ATTR_MTIME) != 0) {
            tv[1] = attr.st_mtim;
        }
        if (::utimensat(upper(), rel.c_str(), tv, is_link ? AT_SYMLINK_NOFOLLOW : 0) < 0) {
            return errno;
        }
    }
    if (::fstatat(upper(), rel.c_str(), &out, AT_SYMLINK_NOFOLLOW) < 0) {
        return errno;
    }
    fix_attr(n, out);
    return 0;
}

} // namespace strata::layerfs::unionfs
