#include "layerfs/lazy_fs.hpp"

#include "layerfs/fuse_daemon.hpp"

#include "snapshot/layer_index.hpp"
#include "snapshot/lazy_index.hpp"
#include "snapshot/lazy_toc.hpp"
#include "snapshot/partial_blob.hpp"
#include "snapshot/store.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/scope.hpp"

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

namespace strata::layerfs {

namespace {

using formats::EntryType;
using snapshot::MergedTree;
using snapshot::PathTrie;

struct Layer {
    std::shared_ptr<const snapshot::BlobIndex> index;
    std::unique_ptr<snapshot::ContentReader> reader;         // an index made by a pass
    std::unique_ptr<snapshot::ChunkedContentReader> chunked; // an index made from a TOC
};

struct DirEntry {
    std::string name;
    std::uint32_t node;
    bool dot; // "." or ".."
};

class LazyFs {
public:
    explicit LazyFs(const LazyOptions& opts) {
        snapshot::Store store(opts.store);
        snapshot::Image img = store.load(opts.manifest);
        for (const auto& d : img.manifest.layers) {
            auto idx =
                std::make_shared<const snapshot::BlobIndex>(snapshot::load_lazy_index(store, d));
            if (!idx->seekable) {
                throw Error("layer " + d.digest.str() +
                            " cannot be read lazily (a zstd stream without frames to seek to, "
                            "or a sparse file): unpack the image instead");
            }
            m_index.begin_layer(d.digest.str());
            for (const auto& ie : idx->entries) {
                m_index.add_entry(ie.entry);
            }
            m_index.end_layer();
            if (idx->toc && !store.has_blob(d.digest) &&
                snapshot::PartialBlob::exists(store, d.digest)) {
                m_layers.push_back(Layer{idx, nullptr, partial_reader(opts, store, d, idx)});
            } else if (idx->toc) {
                m_layers.push_back(Layer{idx, nullptr,
                                         std::make_unique<snapshot::ChunkedContentReader>(
                                             store.open_blob(d.digest), idx)});
            } else {
                m_layers.push_back(Layer{
                    idx, std::make_unique<snapshot::ContentReader>(store.open_blob(d.digest), idx),
                    nullptr});
            }
        }
        m_tree = std::make_unique<MergedTree>(m_index, m_index.layer_count());
        // Inode numbers: node + 1 (the root is FUSE's 1); every hard link of
        // one content record shares the first one's.
        const std::size_t n = m_index.trie().size();
        m_ino.assign(n, 0);
        m_nlink.assign(n + 1, 0);
        std::unordered_map<std::uint32_t, fuse_ino_t> by_record;
        m_tree->walk(PathTrie::k_root, [&](std::uint32_t node) {
            fuse_ino_t ino = node + 1;
            EntryType t = m_tree->type_of(node);
            if (t == EntryType::file || t == EntryType::hardlink) {
                auto r = m_tree->data_record(node);
                if (!r) {
                    throw Error("image " + opts.manifest + ": hard link /" +
                                m_index.trie().path(node) + " points to nothing");
                }
                auto [it, fresh] = by_record.emplace(*r, ino);
                ino = it->second;
                (void)fresh;
            }
            m_ino[node] = ino;
            m_nlink[ino - 1]++;
            if (t == EntryType::dir && node != PathTrie::k_root) {
                auto p = m_index.trie().parent(node);
                m_nlink[p] = m_nlink[p] + 1; // a subdirectory's ".."
            }
        });
        m_fsname = opts.fsname;
    }

    // A lazily pulled layer (snapshot/partial_blob.hpp): its frames are
    // fetched into partial/ as they are first read.
    static std::unique_ptr<snapshot::ChunkedContentReader>
    partial_reader(const LazyOptions& opts, const snapshot::Store& store,
                   const formats::Descriptor& d, std::shared_ptr<const snapshot::BlobIndex> idx) {
        if (!opts.remote) {
            throw Error("layer " + d.digest.str() +
                        " was pulled lazily and this server cannot fetch the rest of it");
        }
        auto partial = snapshot::PartialBlob::open(store, d.digest);
        auto fetch = opts.remote(*partial);
        UniqueFd fd = fs::open(partial->dir() + "/data", O_RDONLY | O_CLOEXEC);
        auto source = [partial, fetch](std::uint64_t begin, std::uint64_t end, bool refetch) {
            std::uint64_t n = partial->ensure(begin, end, fetch, refetch);
            if (n > 0) {
                STRATA_LOG_DEBUG("lazy: fetched {} bytes of {} from {}", n, partial->digest().str(),
                                 partial->source().registry);
            }
        };
        return std::make_unique<snapshot::ChunkedContentReader>(std::move(fd), std::move(idx),
                                                                std::move(source));
    }

    const MergedTree& tree() const { return *m_tree; }
    const snapshot::LayerIndex& index() const { return m_index; }

    bool valid(fuse_ino_t ino) const {
        return ino >= 1 && ino - 1 < m_ino.size() && m_ino[ino - 1] == ino;
    }
    std::uint32_t node_of(fuse_ino_t ino) const { return static_cast<std::uint32_t>(ino - 1); }
    fuse_ino_t ino_of(std::uint32_t node) const { return m_ino[node]; }

    // The record whose metadata the node shows (a hard link: its target's).
    std::optional<std::uint32_t> meta_record(std::uint32_t node) const {
        EntryType t = m_tree->type_of(node);
        if (t == EntryType::file || t == EntryType::hardlink) {
            return m_tree->data_record(node);
        }
        return m_tree->record_of(node);
    }

    struct stat stat_of(std::uint32_t node) const {
        struct stat st {};
        st.st_ino = ino_of(node);
        st.st_blksize = 4096;
        auto r = meta_record(node);
        EntryType t = m_tree->type_of(node);
        if (!r) {
            st.st_mode = S_IFDIR | 0755;
        } else {
            const auto& rec = m_index.record(*r);
            t = rec.type == EntryType::hardlink ? EntryType::file : rec.type;
            st.st_mode = rec.mode & 07777;
            st.st_uid = rec.uid;
            st.st_gid = rec.gid;
            st.st_mtim.tv_sec = rec.mtime_sec;
            st.st_mtim.tv_nsec = rec.mtime_nsec;
            st.st_atim = st.st_mtim;
            st.st_ctim = st.st_mtim;
            switch (t) {
            case EntryType::file:
            case EntryType::hardlink:
                st.st_mode |= S_IFREG;
                st.st_size = static_cast<off_t>(rec.size);
                break;
            case EntryType::dir:
                st.st_mode |= S_IFDIR;
                break;
            case EntryType::symlink:
                st.st_mode |= S_IFLNK;
                st.st_size = static_cast<off_t>(m_index.string(rec.link).size());
                break;
            case EntryType::chardev:
                st.st_mode |= S_IFCHR;
                st.st_rdev = makedev(rec.devmajor, rec.devminor);
                break;
            case EntryType::blockdev:
                st.st_mode |= S_IFBLK;
                st.st_rdev = makedev(rec.devmajor, rec.devminor);
                break;
            case EntryType::fifo:
                st.st_mode |= S_IFIFO;
                break;
            }
        }
        if (S_ISDIR(st.st_mode)) {
            st.st_size = 4096;
        }
        st.st_nlink = m_nlink[st.st_ino - 1] + (S_ISDIR(st.st_mode) ? 1 : 0);
        st.st_blocks = (st.st_size + 511) / 512;
        return st;
    }

    // Reads a regular file's bytes.
    std::size_t read(std::uint32_t node, std::uint64_t off, char* buf, std::size_t len) {
        auto r = m_tree->data_record(node);
        if (!r) {
            return 0;
        }
        const auto& rec = m_index.record(*r);
        if (off >= rec.size) {
            return 0;
        }
        len = static_cast<std::size_t>(std::min<std::uint64_t>(len, rec.size - off));
        Layer& l = m_layers.at(rec.layer);
        if (l.chunked) {
            l.chunked->read(rec.ordinal, off, buf, len);
            return len;
        }
        const auto& ie = l.index->entries.at(rec.ordinal);
        l.reader->read(ie.content + off, buf, len);
        return len;
    }

    std::atomic<bool> initialized{false};
    // The kernel takes ENOSYS from open / opendir as "no need to ask again"
    // (set at INIT, before any request).
    bool no_open = false;
    bool no_opendir = false;
    std::string m_fsname;

private:
    snapshot::LayerIndex m_index;
    std::unique_ptr<MergedTree> m_tree;
    std::vector<Layer> m_layers;
    std::vector<fuse_ino_t> m_ino;      // per node: its inode (0: not present)
    std::vector<std::uint32_t> m_nlink; // per inode - 1
};

LazyFs& fs_of(fuse_req_t req) {
    return *static_cast<LazyFs*>(fuse_req_userdata(req));
}

constexpr double k_forever = 86400.0 * 365;

void reply_entry(fuse_req_t req, LazyFs& fs, std::uint32_t node) {
    fuse_entry_param e{};
    e.ino = fs.ino_of(node);
    e.generation = 1;
    e.attr = fs.stat_of(node);
    e.attr_timeout = k_forever;
    e.entry_timeout = k_forever;
    fuse_reply_entry(req, &e);
}

template <typename F> void guarded(fuse_req_t req, const char* op, F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        STRATA_LOG_ERROR("lazy fs: {}: {}", op, e.what());
        fuse_reply_err(req, EIO);
    }
}

void ll_init(void* userdata, fuse_conn_info* conn) {
    auto* fs = static_cast<LazyFs*>(userdata);
    if ((conn->capable & FUSE_CAP_SPLICE_WRITE) != 0) {
        conn->want |= FUSE_CAP_SPLICE_WRITE;
    }
    // Nothing here ever changes, so the kernel may skip every request that
    // only says so: open and opendir answered ENOSYS stop coming (with them
    // release, releasedir and flush; the kernel then keeps file pages and
    // directory listings cached, as keep_cache and cache_readdir asked),
    // symlink targets stay in the page cache, and lookups in one directory
    // run in parallel.
    fs->no_open = (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) != 0;
    fs->no_opendir = (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
    for (unsigned cap : {FUSE_CAP_CACHE_SYMLINKS, FUSE_CAP_PARALLEL_DIROPS, FUSE_CAP_READDIRPLUS}) {
        if ((conn->capable & cap) != 0) {
            conn->want |= cap;
        }
    }
    // A directory listing brings every entry's attributes along (one
    // readdirplus instead of a lookup per name), for the first walk only:
    // the kernel's entries then live for ever.
    conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
    // Reads of up to 1 MiB (libfuse sizes the kernel's max_pages from
    // max_write; its buffers hold 1 MiB + a header): a cold read of a big
    // file takes a quarter of the round trips of the default 128 KiB.
    conn->max_write = 1 << 20;
    conn->max_readahead = 1 << 20;
    fs->initialized = true;
}

void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    guarded(req, "lookup", [&] {
        LazyFs& fs = fs_of(req);
        if (!fs.valid(parent)) {
            fuse_reply_err(req, ENOENT);
            return;
        }
        auto c = fs.index().trie().find_child(fs.node_of(parent), name);
        if (!c || !fs.tree().present(*c)) {
            // A negative entry, cached for ever: layers never change.
            fuse_entry_param e{};
            e.entry_timeout = k_forever;
            fuse_reply_entry(req, &e);
            return;
        }
        reply_entry(req, fs, *c);
    });
}

void ll_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    guarded(req, "getattr", [&] {
        LazyFs& fs = fs_of(req);
        if (!fs.valid(ino)) {
            fuse_reply_err(req, ENOENT);
            return;
        }
        struct stat st = fs.stat_of(fs.node_of(ino));
        fuse_reply_attr(req, &st, k_forever);
    });
}

void ll_readlink(fuse_req_t req, fuse_ino_t ino) {
    guarded(req, "readlink", [&] {
        LazyFs& fs = fs_of(req);
        if (!fs.valid(ino)) {
            fuse_reply_err(req, ENOENT);
            return;
        }
        auto r = fs.tree().record_of(fs.node_of(ino));
        if (!r || fs.index().record(*r).type != EntryType::symlink) {
            fuse_reply_err(req, EINVAL);
            return;
        }
        fuse_reply_readlink(req, fs.index().string(fs.index().record(*r).link).c_str());
    });
}

// A directory's entries in the order readdir gives them: ".", "..", then
// the present children sorted by name.
std::vector<DirEntry> listing(const LazyFs& fs, std::uint32_t node) {
    std::vector<DirEntry> list;
    list.push_back({".", node, true});
    list.push_back({"..", node == PathTrie::k_root ? node : fs.index().trie().parent(node), true});
    for (auto c : fs.tree().children(node)) {
        list.push_back({std::string(fs.index().trie().name(c)), c, false});
    }
    return list;
}

void ll_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, "opendir", [&] {
        LazyFs& fs = fs_of(req);
        if (!fs.valid(ino) || !fs.tree().is_dir(fs.node_of(ino))) {
            fuse_reply_err(req, fs.valid(ino) ? ENOTDIR : ENOENT);
            return;
        }
        if (fs.no_opendir) {
            fuse_reply_err(req, ENOSYS); // readdir lists by inode; the kernel caches it
            return;
        }
        fi->fh = reinterpret_cast<std::uint64_t>(
            std::make_unique<std::vector<DirEntry>>(listing(fs, fs.node_of(ino))).release());
        fi->cache_readdir = 1;
        fi->keep_cache = 1;
        fuse_reply_open(req, fi);
    });
}

// readdir and readdirplus: from the listing opendir kept, or (no opendir)
// one made now. The kernel caches what it gets (cache_readdir), so a
// directory is listed here once per mount.
void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi,
                    bool plus) {
    LazyFs& fs = fs_of(req);
    std::vector<DirEntry> made;
    const std::vector<DirEntry>* list = reinterpret_cast<std::vector<DirEntry>*>(fi->fh);
    if (list == nullptr) {
        if (!fs.valid(ino) || !fs.tree().is_dir(fs.node_of(ino))) {
            fuse_reply_err(req, fs.valid(ino) ? ENOTDIR : ENOENT);
            return;
        }
        made = listing(fs, fs.node_of(ino));
        list = &made;
    }
    std::vector<char> buf(size);
    std::size_t used = 0;
    for (auto i = static_cast<std::size_t>(off); i < list->size(); ++i) {
        const DirEntry& d = (*list)[i];
        fuse_entry_param e{};
        e.attr.st_ino = fs.ino_of(d.node);
        if (d.dot) {
            // "." and "..": the kernel takes only their names and types
            // (no entry: e.ino stays 0).
            e.attr.st_mode = S_IFDIR;
        } else {
            e.ino = e.attr.st_ino;
            e.generation = 1;
            e.attr = fs.stat_of(d.node);
            e.attr_timeout = k_forever;
            e.entry_timeout = k_forever;
        }
        std::size_t n = plus
                            ? fuse_add_direntry_plus(req, buf.data() + used, size - used,
                                                     d.name.c_str(), &e, static_cast<off_t>(i + 1))
                            : fuse_add_direntry(req, buf.data() + used, size - used, d.name.c_str(),
                                                &e.attr, static_cast<off_t>(i + 1));
        if (n > size - used) {
            break;
        }
        used += n;
    }
    fuse_reply_buf(req, buf.data(), used);
}

void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
    guarded(req, "readdir", [&] { readdir_common(req, ino, size, off, fi, false); });
}

void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
    guarded(req, "readdirplus", [&] { readdir_common(req, ino, size, off, fi, true); });
}

void ll_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
    delete reinterpret_cast<std::vector<DirEntry>*>(fi->fh);
    fuse_reply_err(req, 0);
}

void ll_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, "open", [&] {
        LazyFs& fs = fs_of(req);
        if (!fs.valid(ino)) {
            fuse_reply_err(req, ENOENT);
            return;
        }
        if ((fi->flags & O_ACCMODE) != O_RDONLY) {
            fuse_reply_err(req, EROFS);
            return;
        }
        if (fs.no_open) {
            // Success for the kernel, which opens every later file without
            // asking (no open, flush nor release round trips), pages kept.
            fuse_reply_err(req, ENOSYS);
            return;
        }
        fi->keep_cache = 1;
        fuse_reply_open(req, fi);
    });
}

void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
    guarded(req, "read", [&] {
        LazyFs& fs = fs_of(req);
        if (!fs.valid(ino)) {
            fuse_reply_err(req, ENOENT);
            return;
        }
        std::unique_ptr<char[]> buf(new char[size]);
        std::size_t n = fs.read(fs.node_of(ino), static_cast<std::uint64_t>(off), buf.get(), size);
        fuse_reply_buf(req, buf.get(), n);
    });
}

void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
    guarded(req, "getxattr", [&] {
        LazyFs& fs = fs_of(req);
        if (!fs.valid(ino)) {
            fuse_reply_err(req, ENOENT);
            return;
        }
        auto r = fs.meta_record(fs.node_of(ino));
        const auto* x = r ? &fs.index().xattrs(fs.index().record(*r).xattrs) : nullptr;
        auto it = x != nullptr ? x->find(name) : decltype(x->end()){};
        if (x == nullptr || it == x->end()) {
            fuse_reply_err(req, ENODATA);
            return;
        }
        if (size == 0) {
            fuse_reply_xattr(req, it->second.size());
        } else if (size < it->second.size()) {
            fuse_reply_err(req, ERANGE);
        } else {
            fuse_reply_buf(req, it->second.data(), it->second.size());
        }
    });
}

void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
    guarded(req, "listxattr", [&] {
        LazyFs& fs = fs_of(req);
        if (!fs.valid(ino)) {
            fuse_reply_err(req, ENOENT);
            return;
        }
        auto r = fs.meta_record(fs.node_of(ino));
        std::string names;
        if (r) {
            for (const auto& [k, v] : fs.index().xattrs(fs.index().record(*r).xattrs)) {
                names += k;
                names += '\0';
            }
        }
        if (size == 0) {
            fuse_reply_xattr(req, names.size());
        } else if (size < names.size()) {
            fuse_reply_err(req, ERANGE);
        } else {
            fuse_reply_buf(req, names.data(), names.size());
        }
    });
}

void ll_statfs(fuse_req_t req, fuse_ino_t) {
    struct statvfs sv {};
    sv.f_bsize = 4096;
    sv.f_frsize = 4096;
    sv.f_namemax = 255;
    fuse_reply_statfs(req, &sv);
}

fuse_lowlevel_ops make_ops() {
    fuse_lowlevel_ops ops{};
    ops.init = ll_init;
    ops.lookup = ll_lookup;
    ops.getattr = ll_getattr;
    ops.readlink = ll_readlink;
    ops.opendir = ll_opendir;
    ops.readdir = ll_readdir;
    ops.readdirplus = ll_readdirplus;
    ops.releasedir = ll_releasedir;
    ops.open = ll_open;
    ops.read = ll_read;
    ops.getxattr = ll_getxattr;
    ops.listxattr = ll_listxattr;
    ops.statfs = ll_statfs;
    return ops;
}

struct SessionDeleter {
    void operator()(fuse_session* se) const { fuse_session_destroy(se); }
};

} // namespace

int serve_lazy(const LazyOptions& opts, const std::string& target, bool daemonize) {
    LazyFs fs(opts);
    bool allow_other = opts.allow_other.value_or(::geteuid() == 0);
    std::string mount_opts =
        "fsname=" + opts.fsname + ",subtype=strata-lazy,default_permissions,ro";
    if (allow_other) {
        mount_opts += ",allow_other";
    }
    if (opts.suid_dev) {
        mount_opts += ",suid,dev";
    }
    std::vector<std::string> argv_s = {"strata-lazy", "-o", mount_opts};
    std::vector<char*> argv;
    for (auto& a : argv_s) {
        argv.push_back(a.data());
    }
    fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
    fuse_lowlevel_ops ops = make_ops();
    std::unique_ptr<fuse_session, SessionDeleter> se(
        fuse_session_new(&args, &ops, sizeof ops, &fs));
    if (!se) {
        throw Error("lazy filesystem: fuse_session_new failed for \"" + target + "\"");
    }
    if (fuse_set_signal_handlers(se.get()) != 0) {
        throw Error("lazy filesystem: cannot install signal handlers");
    }
    ScopeExit restore_signals([&] { fuse_remove_signal_handlers(se.get()); });
    if (fuse_session_mount(se.get(), target.c_str()) != 0) {
        throw SysError("mount fuse.strata-lazy", target, EIO);
    }
    ScopeExit unmount_at_end([&] { fuse_session_unmount(se.get()); });
    fuse_buf buf{};
    ScopeExit free_buf([&] { std::free(buf.mem); });
    if (daemonize && !daemonize_when_ready(se.get(), buf, target, "strata-lazy",
                                           [&] { return fs.initialized.load(); })) {
        return 1;
    }
    if (::chdir("/") != 0) {
        // "/" always exists.
    }
    std::free(buf.mem);
    buf = fuse_buf{};
    fuse_loop_config* cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(cfg, 0);
    fuse_loop_cfg_set_max_threads(cfg, 16);
    fuse_loop_cfg_set_idle_threads(cfg, 4);
    int r = fuse_session_loop_mt(se.get(), cfg);
    fuse_loop_cfg_destroy(cfg);
    return r < 0 ? 1 : 0;
}

} // namespace strata::layerfs
