// Resolving names through the layers (whiteouts, opaque directories, the
// layers a directory merges), merged listings and readdir.

#include "layerfs/union/fs.hpp"

#include "util/fs.hpp"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <sys/xattr.h>
#include <unordered_set>

namespace strata::layerfs::unionfs {

bool Fs::is_opaque(int layer, const std::string& rel) const {
    std::string p = proc_path(layer, rel);
    char v[2];
    for (const char* name : {wh::k_trusted_opaque, wh::k_user_opaque}) {
        ssize_t n = ::lgetxattr(p.c_str(), name, v, sizeof v);
        if (n == 1 && v[0] == wh::k_opaque_value[0]) {
            return true;
        }
    }
    struct stat st;
    return ::fstatat(root_fd(layer), join_rel(rel, wh::k_opaque_marker).c_str(), &st,
                     AT_SYMLINK_NOFOLLOW) == 0;
}

bool Fs::oci_whiteout_at(int layer, const std::string& dir, const std::string& name) const {
    struct stat st;
    return ::fstatat(root_fd(layer), join_rel(dir, wh::oci_name(name)).c_str(), &st,
                     AT_SYMLINK_NOFOLLOW) == 0;
}

// Continues a directory's layer list below layer index `from` of the
// parent's list: lower directories of the same name merge until an opaque
// directory, a non-directory or a whiteout.
void Fs::collect_dir_layers(const std::vector<int>& parent_layers, std::size_t from,
                            const std::string& rel, Found& f) const {
    f.dir_layers.assign(1, f.layer);
    if (is_opaque(f.layer, rel)) {
        return;
    }
    std::string dir = fs::dirname(rel);
    if (dir.empty()) {
        dir = ".";
    }
    std::string name = fs::basename(rel);
    for (std::size_t i = from + 1; i < parent_layers.size(); ++i) {
        int k = parent_layers[i];
        struct stat st;
        if (::fstatat(root_fd(k), rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (oci_whiteout_at(k, dir, name)) {
                return;
            }
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            return; // a whiteout or a file ends the merge
        }
        f.dir_layers.push_back(k);
        if (is_opaque(k, rel)) {
            return;
        }
    }
}

int Fs::resolve(const Node* parent, const std::string& parent_path, const std::string& name,
                Found& out, bool skip_upper) const {
    if (wh::is_reserved(name)) {
        return ENOENT; // OCI whiteout markers are never visible
    }
    std::string rel = join_rel(parent_path, name);
    const auto& layers = parent->dir_layers;
    for (std::size_t i = 0; i < layers.size(); ++i) {
        int k = layers[i];
        if (skip_upper && m_writable && k == 0) {
            continue;
        }
        if (::fstatat(root_fd(k), rel.c_str(), &out.st, AT_SYMLINK_NOFOLLOW) < 0) {
            int err = errno;
            if (err != ENOENT && err != ENOTDIR) {
                return err;
            }
            if (oci_whiteout_at(k, parent_path, name)) {
                return ENOENT;
            }
            continue;
        }
        if (wh::is_device(out.st)) {
            return ENOENT;
        }
        out.layer = k;
        out.dir_layers.clear();
        if (S_ISDIR(out.st.st_mode)) {
            collect_dir_layers(layers, i, rel, out);
        }
        return 0;
    }
    return ENOENT;
}

int open_dir(int dirfd, const std::string& rel, DirPtr& out) {
    UniqueFd fd(::openat(dirfd, rel.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
        return errno;
    }
    DIR* d = ::fdopendir(fd.get());
    if (d == nullptr) {
        return errno;
    }
    (void)fd.release(); // the DIR owns it now
    out.reset(d);
    return 0;
}

int Fs::list_dir(const std::vector<int>& layers, const std::string& rel,
                 std::vector<DirEntry>& out) const {
    std::unordered_set<std::string> seen; // names shown or whited out
    for (int k : layers) {
        DirPtr dir;
        if (int err = open_dir(root_fd(k), rel, dir); err != 0) {
            if (err == ENOENT) {
                continue; // removed from the upper meanwhile
            }
            return err;
        }
        DIR* d = dir.get();
        std::vector<std::string> hide; // whiteouts of this layer apply to the layers below
        while (auto* de = ::readdir(d)) {
            std::string n = de->d_name;
            if (n == "." || n == "..") {
                continue;
            }
            if (wh::is_reserved(n)) {
                if (!wh::is_opaque_marker(n)) {
                    hide.emplace_back(wh::deleted_name(n));
                }
                continue;
            }
            if (seen.count(n) != 0) {
                continue;
            }
            struct stat st;
            if (::fstatat(::dirfd(d), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT) {
                    continue;
                }
                return errno;
            }
            seen.insert(n);
            if (wh::is_device(st)) {
                continue;
            }
            out.push_back(DirEntry{n, k, st});
        }
        dir.reset();
        for (auto& h : hide) {
            seen.insert(std::move(h));
        }
    }
    return 0;
}

int Fs::lookup(fuse_ino_t parent_id, const char* name, fuse_entry_param& e) {
    std::lock_guard lock(m_tree);
    Node* parent = node_of(parent_id);
    int err = entry_for(parent, path_of(parent), name, e);
    if (err == ENOENT) {
        // A negative entry, cached as long as positive ones.
        e = fuse_entry_param{};
        e.ino = 0;
        e.entry_timeout = m_timeout;
        return 0;
    }
    return err;
}

int Fs::entry_for(Node* parent, const std::string& parent_path, const std::string& name,
                  fuse_entry_param& e) {
    Found f;
    int err = resolve(parent, parent_path, name, f);
    if (err != 0) {
        return err;
    }
    fill_entry(get_node(parent, name, f), f, e);
    return 0;
}

// With m_tree held. Read-only listings are kept in the node for ever;
// writable ones are fresh for every opendir.
int Fs::listing_of(Node* n, Listing& out) {
    if (!m_writable && n->listing) {
        out = n->listing;
        return 0;
    }
    auto entries = std::make_shared<std::vector<DirEntry>>();
    int err = list_dir(n->dir_layers, path_of(n), *entries);
    if (err != 0) {
        return err;
    }
    out = std::move(entries);
    if (!m_writable) {
        n->listing = out;
    }
    return 0;
}

int Fs::opendir(fuse_ino_t ino, fuse_file_info* fi) {
    if (m_no_opendir) {
        return ENOSYS; // the kernel stops sending OPENDIR; readdir uses the node's listing
    }
    auto h = std::make_unique<DirHandle>();
    {
        std::lock_guard lock(m_tree);
        int err = listing_of(node_of(ino), h->entries);
        if (err != 0) {
            return err;
        }
    }
    fi->fh = reinterpret_cast<std::uint64_t>(h.release());
    if (!m_writable) {
        fi->cache_readdir = 1;
        fi->keep_cache = 1;
    }
    return 0;
}

int Fs::readdir(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off, fuse_file_info* fi,
                bool plus, std::string& buf) {
    Listing entries;
    if (fi->fh != 0) {
        entries = reinterpret_cast<DirHandle*>(fi->fh)->entries;
    } else {
        std::lock_guard lock(m_tree);
        int err = listing_of(node_of(ino), entries);
        if (err != 0) {
            return err;
        }
    }
    buf.resize(size);
    std::size_t used = 0;
    // Offsets: 1 is ".", 2 is "..", 3 + i is entries[i].
    auto total = static_cast<off_t>(entries->size()) + 2;
    std::unique_lock lock(m_tree, std::defer_lock);
    if (plus) {
        lock.lock();
    }
    Node* dir = node_of(ino);
    std::string dir_path = plus ? path_of(dir) : std::string();
    // glibc's readdir skips entries whose d_ino is 0: give the dots real numbers.
    ino_t dot_ino = 0;
    ino_t dotdot_ino = FUSE_ROOT_ID;
    {
        std::unique_lock dots_lock(m_tree, std::defer_lock);
        if (!plus) {
            dots_lock.lock();
        }
        dot_ino = dir->st_ino;
        if (dir->parent != nullptr) {
            dotdot_ino = dir->parent->st_ino;
        }
    }
    for (off_t i = off; i < total; ++i) {
        std::string name;
        struct stat st {};
        const DirEntry* de = nullptr;
        if (i < 2) {
            name = i == 0 ? "." : "..";
            st.st_mode = S_IFDIR;
            st.st_ino = i == 0 ? dot_ino : dotdot_ino;
        } else {
            de = &(*entries)[static_cast<std::size_t>(i - 2)];
            name = de->name;
            st = de->st;
        }
        std::size_t room = size - used;
        if (!plus) {
            std::size_t need = fuse_add_direntry(req, nullptr, 0, name.c_str(), nullptr, 0);
            if (need > room) {
                break;
            }
            if (de != nullptr) {
                st.st_ino = map_ino(de->layer, de->st.st_ino);
            }
            fuse_add_direntry(req, buf.data() + used, room, name.c_str(), &st, i + 1);
            used += need;
            continue;
        }
        std::size_t need = fuse_add_direntry_plus(req, nullptr, 0, name.c_str(), nullptr, 0);
        if (need > room) {
            break;
        }
        fuse_entry_param e{};
        if (de == nullptr) {
            e.attr = st; // "." and "..": no lookup count is taken
        } else {
            Found f;
            f.layer = de->layer;
            f.st = de->st;
            if (S_ISDIR(de->st.st_mode)) {
                // The parent's layers decide where this directory merges from.
                auto pos = std::find(dir->dir_layers.begin(), dir->dir_layers.end(), de->layer);
                collect_dir_layers(dir->dir_layers,
                                   static_cast<std::size_t>(pos - dir->dir_layers.begin()),
                                   join_rel(dir_path, name), f);
            }
            Node* n = get_node(dir, name, f);
            fill_entry(n, f, e);
        }
        fuse_add_direntry_plus(req, buf.data() + used, room, name.c_str(), &e, i + 1);
        used += need;
    }
    buf.resize(used);
    return 0;
}

} // namespace strata::layerfs::unionfs
