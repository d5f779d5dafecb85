#include "snapshot/layer_diff.hpp"

#include "formats/layer_xattrs.hpp"
#include "formats/whiteout.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <dirent.h>
#include <fcntl.h>
#include <functional>
#include <map>
#include <mutex>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace strata::snapshot {

using formats::EntryType;
using formats::TarEntry;

namespace {

using Xattrs = std::map<std::string, std::string>;

std::string join_rel(const std::string& a, const std::string& b) {
    return a.empty() ? b : a + "/" + b;
}

// Reads ahead the regular files of a directory on a background thread while
// the writer is busy with earlier entries: with a cold page cache, reading
// many small files one synchronous read at a time is what makes packing
// slow; readahead(2) queues the I/O for a whole directory at once.
class Prefetcher {
public:
    Prefetcher() : m_thread([this] { run(); }) {}
    ~Prefetcher() {
        {
            std::lock_guard lock(m_mu);
            m_done = true;
            m_queue.clear();
        }
        m_cv.notify_one();
        m_thread.join();
    }
    // One hand-off per directory, not per file.
    void add(std::vector<std::string> paths) {
        if (paths.empty()) {
            return;
        }
        {
            std::lock_guard lock(m_mu);
            if (m_queue.size() > 100000) {
                return;
            }
            for (auto& p : paths) {
                m_queue.push_back(std::move(p));
            }
        }
        m_cv.notify_one();
    }

private:
    void run() noexcept {
        for (;;) {
            std::string path;
            {
                std::unique_lock lock(m_mu);
                m_cv.wait(lock, [&] { return m_done || !m_queue.empty(); });
                if (m_done) {
                    return;
                }
                path = std::move(m_queue.front());
                m_queue.pop_front();
            }
            // Best effort: errors are the writer's to report.
            int fd =
                ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
            if (fd >= 0) {
                struct stat st;
                if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
                    ::readahead(fd, 0, static_cast<size_t>(std::min<off_t>(st.st_size, 8 << 20)));
                }
                ::close(fd);
            }
        }
    }

    std::mutex m_mu;
    std::condition_variable m_cv;
    std::deque<std::string> m_queue;
    bool m_done = false;
    std::thread m_thread;
};

// Whether the start of a file is in the page cache: a read that may not
// block (RWF_NOWAIT) tells without doing I/O. A warm tree is then not read
// ahead for nothing.
bool cached(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return true;
    }
    char b;
    struct iovec iov = {&b, 1};
    ssize_t r = ::preadv2(fd, &iov, 1, 0, RWF_NOWAIT);
    ::close(fd);
    return r >= 0;
}

// Sorted names in a directory; when its files are not in the page cache,
// the regular files are handed to prefetch.
std::vector<std::string> list_dir(int dirfd, const std::string& shown,
                                  Prefetcher* prefetch = nullptr) {
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
    std::vector<std::string> files;
    errno = 0;
    while (auto* de = ::readdir(d)) {
        if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0) {
            names.emplace_back(de->d_name);
            if (prefetch != nullptr && de->d_type == DT_REG) {
                files.push_back(shown + "/" + de->d_name);
            }
        }
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    if (prefetch != nullptr && !files.empty() && !cached(files.front())) {
        std::sort(files.begin(), files.end());
        prefetch->add(std::move(files));
    }
    return names;
}

// The xattrs that belong in a layer (formats/layer_xattrs.hpp).
Xattrs layer_xattrs(const Xattrs& all) {
    Xattrs out;
    for (const auto& [k, v] : all) {
        if (formats::layer_xattrs::kept(k)) {
            out.emplace(k, formats::layer_xattrs::value(k, v));
        }
    }
    return out;
}

struct Node {
    std::string rel;  // path inside the tree
    std::string full; // host path
    struct stat st;
    Xattrs xattrs; // raw
    // Where the upper-directory walk found it (not owned, valid while the
    // entry is handed to the sink): its content is opened from there, not
    // by walking the whole host path again. -1: open `full`.
    int dirfd = -1;
    std::string base;
    // A linked file (LinkedFiles): its lstat from there, its xattrs not read.
    bool linked = false;
};

Node load(int dirfd, const std::string& base, const std::string& rel, const std::string& full) {
    Node n;
    n.rel = rel;
    n.full = full;
    if (::fstatat(dirfd, base.c_str(), &n.st, AT_SYMLINK_NOFOLLOW) != 0) {
        throw_errno("stat", full);
    }
    n.xattrs = fs::read_xattrs(full);
    return n;
}

std::string read_link(const Node& n) {
    std::vector<char> buf(static_cast<std::size_t>(std::max<off_t>(n.st.st_size, 255)) + 1);
    ssize_t r = ::readlink(n.full.c_str(), buf.data(), buf.size());
    if (r < 0) {
        throw_errno("readlink", n.full);
    }
    return std::string(buf.data(), static_cast<std::size_t>(r));
}

UniqueFd open_content_at(const Node& n) {
    int fd = ::openat(n.dirfd, n.base.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        throw_errno("open", n.full);
    }
    return UniqueFd(fd);
}

class Emitter {
public:
    Emitter(int out_fd, const formats::TarWriter::Options& opts, DiffStats* stats,
            ChunkedPack* chunked)
        : m_stats(stats != nullptr ? stats : &m_own) {
        m_pack = chunked;
        if (opts.chunked && opts.compression == formats::Compression::zstd) {
            formats::ChunkedWriter::Options co;
            co.level = opts.level;
            co.threads = opts.threads;
            co.start_writeback = opts.start_writeback;
            co.clamp_mtime = opts.clamp_mtime;
            co.out_name = opts.out_name;
            m_chunked = std::make_unique<formats::ChunkedWriter>(out_fd, co);
            if (chunked != nullptr && chunked->old_toc != nullptr && chunked->old_blob_fd >= 0) {
                m_chunked->reuse_from(chunked->old_blob_fd, *chunked->old_toc, chunked->old_what,
                                      chunked->old_checkpoints);
            }
        } else {
            formats::TarWriter::Options to = opts;
            to.chunked = false;
            m_writer.emplace(out_fd, to);
        }
    }

    // A directory whose entry is written only if something below it (or the
    // directory itself) is.
    void push_dir(Node n, bool emit_now) {
        m_pending.push_back(Pending{std::move(n), false});
        if (emit_now) {
            flush_pending();
        }
    }
    void pop_dir() { m_pending.pop_back(); }

    void node(const Node& n) {
        flush_pending();
        write_node(n);
    }

    void whiteout(const std::string& dir_rel, const std::string& name, const struct stat* like) {
        flush_pending();
        TarEntry e;
        e.path = join_rel(dir_rel, formats::whiteout::oci_name(name));
        e.type = EntryType::file;
        e.mode = 0600;
        if (like != nullptr) {
            e.uid = like->st_uid;
            e.gid = like->st_gid;
            e.mtime_sec = like->st_mtim.tv_sec;
        }
        add(e);
        ++m_stats->whiteouts;
        ++m_stats->entries;
    }

    void opaque(const Node& dir) {
        flush_pending();
        TarEntry e;
        e.path = join_rel(dir.rel, std::string(formats::whiteout::k_opaque_marker));
        e.type = EntryType::file;
        e.mode = 0600;
        e.uid = dir.st.st_uid;
        e.gid = dir.st.st_gid;
        e.mtime_sec = dir.st.st_mtim.tv_sec;
        add(e);
        ++m_stats->opaque_dirs;
        ++m_stats->entries;
    }

    formats::LayerDigests finish() {
        if (m_chunked) {
            formats::ChunkedLayerInfo info = m_chunked->finish();
            if (m_pack != nullptr) {
                m_pack->info = info;
            }
            return info.digests;
        }
        return m_writer->finish();
    }
    Prefetcher* prefetch() { return &m_prefetch; }
    // A linked file's lstat as its link left it (LinkedFiles): a regular
    // file with content whose frames the previous layer may give; nullptr
    // when rel is none, or the writer cannot take linked files' frames.
    const struct stat* linked_stat(const std::string& rel) const {
        if (!m_chunked || m_pack == nullptr || m_pack->linked == nullptr ||
            m_pack->old_toc == nullptr) {
            return nullptr;
        }
        auto it = m_pack->linked->find(rel);
        return it == m_pack->linked->end() || !S_ISREG(it->second.st_mode) ||
                       it->second.st_size == 0
                   ? nullptr
                   : &it->second;
    }
    void check_contents(const ContentChecks* checks) {
        if (m_chunked) {
            throw Error("layer writer: content checks need the plain tar writer");
        }
        m_checks = checks;
    }

private:
    struct Pending {
        Node node;
        bool written;
    };

    void flush_pending() {
        for (auto& p : m_pending) {
            if (!p.written) {
                p.written = true;
                if (!p.node.rel.empty()) {
                    write_node(p.node);
                }
            }
        }
    }

    void write_node(const Node& n) {
        TarEntry e;
        e.path = n.rel;
        e.mode = n.st.st_mode & 07777;
        e.uid = n.st.st_uid;
        e.gid = n.st.st_gid;
        e.mtime_sec = n.st.st_mtim.tv_sec; // whole seconds, as Docker
        e.xattrs = layer_xattrs(n.xattrs);
        ++m_stats->entries;
        mode_t t = n.st.st_mode & S_IFMT;
        if (t == S_IFREG) {
            // A linked file is an inode of the previous snapshot that no
            // other path of the upper directory has (builder/copy_reuse).
            if (n.st.st_nlink > 1 && !n.linked) {
                auto key = std::make_pair(n.st.st_dev, n.st.st_ino);
                auto it = m_links.find(key);
                if (it != m_links.end()) {
                    e.type = EntryType::hardlink;
                    e.linkname = it->second;
                    e.xattrs.clear();
                    add(e);
                    ++m_stats->hardlinks;
                    return;
                }
                m_links.emplace(key, n.rel);
            }
            e.type = EntryType::file;
            e.size = static_cast<std::uint64_t>(n.st.st_size);
            if (n.linked) {
                if (m_chunked->add_linked(e)) {
                    ++m_pack->linked_files;
                    ++m_stats->files;
                    m_stats->bytes += e.size;
                    return;
                }
                // The previous layer cannot give its frames: the file as
                // any other, its extended attributes read after all.
                e.xattrs = layer_xattrs(fs::read_xattrs(n.full));
            }
            UniqueFd fd;
            if (e.size > 0) {
                fd = n.dirfd >= 0 ? open_content_at(n) : fs::open(n.full, O_RDONLY | O_NOFOLLOW);
            }
            auto check = m_checks != nullptr && e.size > 0 ? m_checks->find(e.path)
                                                           : ContentChecks::const_iterator{};
            if (m_checks != nullptr && e.size > 0 && check != m_checks->end()) {
                add_checked(e, fd.get(), n.full, check->second);
            } else {
                add(e, fd.get());
            }
            ++m_stats->files;
            m_stats->bytes += e.size;
            return;
        }
        switch (t) {
        case S_IFDIR:
            e.type = EntryType::dir;
            break;
        case S_IFLNK:
            e.type = EntryType::symlink;
            e.linkname = read_link(n);
            break;
        case S_IFCHR:
        case S_IFBLK:
            e.type = t == S_IFCHR ? EntryType::chardev : EntryType::blockdev;
            e.devmajor = major(n.st.st_rdev);
            e.devminor = minor(n.st.st_rdev);
            break;
        case S_IFIFO:
            e.type = EntryType::fifo;
            break;
        case S_IFSOCK:
            // Sockets cannot be stored in a tar layer (Docker skips them too).
            --m_stats->entries;
            return;
        default:
            throw Error(n.full + ": unsupported file type");
        }
        add(e);
    }

    // A file whose content must have the digest `want`: hashed as written.
    void add_checked(const TarEntry& e, int fd, const std::string& full, const std::string& want) {
        formats::DigestHasher h;
        m_writer->add_stream(e, [&](void* buf, std::size_t size) -> std::size_t {
            while (true) {
                ssize_t n = ::read(fd, buf, size);
                if (n < 0) {
                    if (errno == EINTR) {
                        continue;
                    }
                    throw SysError("read", full, errno);
                }
                h.update(buf, static_cast<std::size_t>(n));
                return static_cast<std::size_t>(n);
            }
        });
        std::string got = h.finish().str();
        if (got != want) {
            throw ContentMismatch(full + ": content is " + got + ", expected " + want);
        }
    }

    void add(const TarEntry& e, int fd = -1) {
        if (m_chunked) {
            m_chunked->add(e, fd);
        } else {
            m_writer->add(e, fd);
        }
    }

    std::optional<formats::TarWriter> m_writer;
    std::unique_ptr<formats::ChunkedWriter> m_chunked;
    ChunkedPack* m_pack = nullptr;
    const ContentChecks* m_checks = nullptr;
    Prefetcher m_prefetch;
    DiffStats m_own;
    DiffStats* m_stats;
    std::vector<Pending> m_pending;
    std::map<std::pair<dev_t, ino_t>, std::string> m_links;
};

// ---------------------------------------------------------------- upper dir

bool is_overlay_whiteout(const Node& n) {
    return formats::whiteout::is_overlay_whiteout(n.st, n.xattrs);
}

bool is_opaque(const Node& n) {
    return formats::whiteout::has_opaque_xattr(n.xattrs);
}

// The walk of an upper directory, shared by the layer writer (Emitter) and
// walk_upper_dir (docker diff): sink.whiteout for an overlay whiteout,
// sink.node for everything else (a directory before its contents),
// sink.opaque right after an opaque directory's node.
template <typename Sink>
void walk_upper(Sink& em, int dirfd, const std::string& rel, const std::string& full) {
    for (const auto& name : list_dir(dirfd, full, em.prefetch())) {
        std::string crel = join_rel(rel, name);
        std::string cfull = full + "/" + name;
        Node n;
        n.rel = crel;
        n.full = cfull;
        if (const struct stat* ls = em.linked_stat(crel)) {
            n.st = *ls;
            n.linked = true;
        } else if (::fstatat(dirfd, name.c_str(), &n.st, AT_SYMLINK_NOFOLLOW) != 0) {
            throw_errno("stat", cfull);
        }
        if (!n.linked) {
            n.xattrs = fs::read_xattrs(cfull);
        }
        for (const char* k :
             {formats::whiteout::k_trusted_redirect, formats::whiteout::k_user_redirect,
              formats::whiteout::k_trusted_metacopy, formats::whiteout::k_user_metacopy}) {
            if (n.xattrs.contains(k)) {
                throw Error(cfull + ": has " + k +
                            "; an upper directory made with redirect_dir or metacopy cannot be "
                            "turned into a layer by walking it (mount with "
                            "redirect_dir=off,metacopy=off)");
            }
        }
        if (is_overlay_whiteout(n)) {
            em.whiteout(rel, name, &n.st);
            continue;
        }
        if (S_ISDIR(n.st.st_mode)) {
            em.node(n);
            if (is_opaque(n)) {
                em.opaque(n);
            }
            int sub = ::openat(dirfd, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                throw_errno("open", cfull);
            }
            UniqueFd subfd(sub);
            walk_upper(em, subfd.get(), crel, cfull);
            continue;
        }
        n.dirfd = dirfd;
        n.base = name;
        em.node(n);
    }
}

// ---------------------------------------------------------------- dir vs parent

bool same_content(const Node& a, const Node& b) {
    UniqueFd fa = fs::open(a.full, O_RDONLY | O_NOFOLLOW);
    UniqueFd fb = fs::open(b.full, O_RDONLY | O_NOFOLLOW);
    std::vector<char> ba(1 << 16), bb(1 << 16);
    for (;;) {
        std::size_t na = fs::read_full(fa.get(), a.full, ba.data(), ba.size());
        std::size_t nb = fs::read_full(fb.get(), b.full, bb.data(), bb.size());
        if (na != nb || std::memcmp(ba.data(), bb.data(), na) != 0) {
            return false;
        }
        if (na == 0) {
            return true;
        }
    }
}

bool changed(const Node& n, const Node& o) {
    const struct stat& a = n.st;
    const struct stat& b = o.st;
    if ((a.st_mode & S_IFMT) != (b.st_mode & S_IFMT) ||
        (a.st_mode & 07777) != (b.st_mode & 07777) || a.st_uid != b.st_uid ||
        a.st_gid != b.st_gid) {
        return true;
    }
    if (layer_xattrs(n.xattrs) != layer_xattrs(o.xattrs)) {
        return true;
    }
    switch (a.st_mode & S_IFMT) {
    case S_IFREG:
        if (a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            return false;
        }
        if (a.st_size != b.st_size || a.st_mtim.tv_sec != b.st_mtim.tv_sec ||
            a.st_mtim.tv_nsec != b.st_mtim.tv_nsec) {
            return true;
        }
        // Same size and mtime. When the mtime has no sub-second part it may
        // have been truncated (a copy from a tar): compare the bytes.
        if (a.st_mtim.tv_nsec == 0) {
            return !same_content(n, o);
        }
        return false;
    case S_IFLNK:
        return read_link(n) != read_link(o);
    case S_IFCHR:
    case S_IFBLK:
        return a.st_rdev != b.st_rdev;
    case S_IFDIR:
        return a.st_mtim.tv_sec != b.st_mtim.tv_sec;
    default:
        return false;
    }
}

UniqueFd open_subdir(int dirfd, const std::string& name, const std::string& shown) {
    int fd = ::openat(dirfd, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        throw_errno("open", shown);
    }
    return UniqueFd(fd);
}

// Everything below a new directory.
void add_tree(Emitter& em, int dirfd, const std::string& rel, const std::string& full) {
    for (const auto& name : list_dir(dirfd, full, em.prefetch())) {
        std::string crel = join_rel(rel, name);
        std::string cfull = full + "/" + name;
        Node n = load(dirfd, name, crel, cfull);
        em.node(n);
        if (S_ISDIR(n.st.st_mode)) {
            UniqueFd sub = open_subdir(dirfd, name, cfull);
            add_tree(em, sub.get(), crel, cfull);
        }
    }
}

void diff_dirs(Emitter& em, int nfd, const std::string& nfull, int ofd, const std::string& ofull,
               const std::string& rel) {
    std::vector<std::string> nn = list_dir(nfd, nfull); // most files are unchanged: not read
    std::vector<std::string> on = list_dir(ofd, ofull);
    std::size_t i = 0, j = 0;
    while (i < nn.size() || j < on.size()) {
        int cmp = i == nn.size() ? 1 : j == on.size() ? -1 : nn[i].compare(on[j]);
        if (cmp > 0) {
            // Only in the parent: removed.
            struct stat st;
            if (::fstatat(nfd, ".", &st, 0) != 0) {
                throw_errno("stat", nfull);
            }
            em.whiteout(rel, on[j], &st);
            ++j;
            continue;
        }
        const std::string& name = nn[i];
        std::string crel = join_rel(rel, name);
        std::string cfull = nfull + "/" + name;
        Node n = load(nfd, name, crel, cfull);
        if (cmp < 0) {
            em.node(n);
            if (S_ISDIR(n.st.st_mode)) {
                UniqueFd sub = open_subdir(nfd, name, cfull);
                add_tree(em, sub.get(), crel, cfull);
            }
            ++i;
            continue;
        }
        std::string ofull_c = ofull + "/" + name;
        Node o = load(ofd, name, crel, ofull_c);
        bool ndir = S_ISDIR(n.st.st_mode);
        bool odir = S_ISDIR(o.st.st_mode);
        if (ndir && odir) {
            em.push_dir(n, changed(n, o));
            UniqueFd nsub = open_subdir(nfd, name, cfull);
            UniqueFd osub = open_subdir(ofd, name, ofull_c);
            diff_dirs(em, nsub.get(), cfull, osub.get(), ofull_c, crel);
            em.pop_dir();
        } else if (ndir) {
            // A file replaced by a directory: the whole directory.
            em.node(n);
            UniqueFd sub = open_subdir(nfd, name, cfull);
            add_tree(em, sub.get(), crel, cfull);
        } else if (changed(n, o)) {
            em.node(n);
        }
        ++i;
        ++j;
    }
}

// Hands walk_upper's entries to walk_upper_dir's visitor.
class Visitor {
public:
    explicit Visitor(const std::function<void(const UpperEntry&)>& visit) : m_visit(visit) {}
    Prefetcher* prefetch() { return nullptr; }
    const struct stat* linked_stat(const std::string&) const { return nullptr; }
    void whiteout(const std::string& dir_rel, const std::string& name, const struct stat* st) {
        UpperEntry e;
        e.path = join_rel(dir_rel, name);
        e.st = *st;
        e.whiteout = true;
        m_visit(e);
    }
    void node(const Node& n) {
        UpperEntry e;
        e.path = n.rel;
        e.st = n.st;
        e.opaque = S_ISDIR(n.st.st_mode) && is_opaque(n);
        m_visit(e);
    }
    void opaque(const Node&) {}

private:
    const std::function<void(const UpperEntry&)>& m_visit;
};

} // namespace

void walk_upper_dir(const std::string& upper_dir,
                    const std::function<void(const UpperEntry&)>& visit) {
    UniqueFd root = fs::open(upper_dir, O_PATH | O_DIRECTORY);
    Visitor v(visit);
    walk_upper(v, root.get(), "", upper_dir);
}

formats::LayerDigests write_upper_layer(const std::string& upper_dir, int out_fd,
                                        const formats::TarWriter::Options& opts, DiffStats* stats,
                                        ChunkedPack* chunked, const ContentChecks* checks) {
    UniqueFd root = fs::open(upper_dir, O_PATH | O_DIRECTORY);
    Emitter em(out_fd, opts, stats, chunked);
    if (checks != nullptr && !checks->empty()) {
        em.check_contents(checks);
    }
    walk_upper(em, root.get(), "", upper_dir);
    return em.finish();
}

formats::LayerDigests write_diff_layer(const std::string& dir, const std::string& parent_dir,
                                       int out_fd, const formats::TarWriter::Options& opts,
                                       DiffStats* stats, ChunkedPack* chunked) {
    UniqueFd root = fs::open(dir, O_PATH | O_DIRECTORY);
    Emitter em(out_fd, opts, stats, chunked);
    if (parent_dir.empty()) {
        add_tree(em, root.get(), "", dir);
    } else {
        UniqueFd proot = fs::open(parent_dir, O_PATH | O_DIRECTORY);
        diff_dirs(em, root.get(), dir, proot.get(), parent_dir, "");
    }
    return em.finish();
}

} // namespace strata::snapshot
