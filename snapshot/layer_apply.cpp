#include "snapshot/layer_apply.hpp"

#include "formats/whiteout.hpp"
#include "snapshot/merged_view.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/root.hpp"
#include "util/sys/syscalls.hpp"

#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <unordered_set>
#include <vector>

namespace strata::snapshot {

using formats::EntryType;
using formats::TarEntry;

namespace {

constexpr std::string_view k_whiteout_prefix = formats::whiteout::k_prefix;
constexpr std::string_view kOpaqueMarker = formats::whiteout::k_opaque_marker;
constexpr std::string_view kAufsMetaPrefix = formats::whiteout::k_aufs_meta_prefix;

bool starts_with(std::string_view s, std::string_view p) {
    return s.substr(0, p.size()) == p;
}

std::vector<std::string> split_components(std::string_view path) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i <= path.size()) {
        std::size_t j = path.find('/', i);
        if (j == std::string_view::npos) {
            j = path.size();
        }
        std::string_view c = path.substr(i, j - i);
        if (!c.empty() && c != ".") {
            out.emplace_back(c);
        }
        i = j + 1;
    }
    return out;
}

// Normalises an entry name ("a//b/./c" -> "a/b/c") and rejects "..".
std::string checked_name(std::string_view raw, const char* what) {
    std::string out;
    for (auto& c : split_components(raw)) {
        if (c == "..") {
            throw Error(std::string(what) + " has a \"..\" component");
        }
        if (!out.empty()) {
            out += '/';
        }
        out += c;
    }
    return out;
}

bool overlay_xattr(const std::string& name) {
    return formats::whiteout::is_overlay_xattr(name);
}

struct DirMeta {
    std::string path;
    std::uint32_t mode;
    std::int64_t sec;
    std::uint32_t nsec;
};

class Applier {
public:
    Applier(formats::TarReader& reader, int root, const ApplyOptions& opts)
        : m_reader(reader), m_root(root), m_opts(opts),
          m_preserve_owner(opts.preserve_owner.value_or(::geteuid() == 0)) {}

    ApplyStats run() {
        while (auto e = m_reader.next()) {
            ++m_stats.entries;
            try {
                apply(*e);
            } catch (const Error& ex) {
                throw Error(where() + ": entry \"" + e->path + "\": " + ex.what());
            }
        }
        finish_whiteouts();
        finish_dirs();
        m_stats.compression = m_reader.compression();
        return m_stats;
    }

private:
    std::string where() const {
        return "layer " + (m_opts.layer_name.empty() ? std::string("(stream)") : m_opts.layer_name);
    }

    // ---- resolving directories inside the root ----

    // Forgets the cached directory. Its fd stays open until the next
    // invalidation, since the entry being applied may still be using it.
    void invalidate() {
        m_cache_key.reset();
        m_keepalive = std::move(m_cache_fd);
    }

    // Returns an O_PATH fd of directory `path` (a checked, relative name),
    // creating missing components when create is set; -1 when it is missing
    // and create is not set. The path is resolved as the layer's entries are
    // applied by Docker's (containerd's) applier, over the image's root: a
    // symlink on the way is followed inside the root, whichever layer brought
    // it (an absolute target starts at the root, ".." stops there). The walk
    // below handles the plain case, every component a directory of the
    // target; a symlink, or (over lowers) a component the target lacks, goes
    // to resolve_merged.
    int dir_fd(const std::string& path, bool create) {
        if (path.empty()) {
            return m_root;
        }
        if (m_cache_key && *m_cache_key == path) {
            return m_cache_fd.get();
        }
        UniqueFd cur;
        std::string walked;
        std::string_view rest = path;
        if (m_cache_key && starts_with(path, *m_cache_key + "/")) {
            cur = dup_cloexec(m_cache_fd.get());
            walked = *m_cache_key;
            rest = std::string_view(path).substr(m_cache_key->size() + 1);
        }
        bool over_lowers = m_opts.mode == WhiteoutMode::overlay && !m_opts.lower_dirs.empty();
        for (auto& comp : split_components(rest)) {
            int curfd = cur ? cur.get() : m_root;
            walked = walked.empty() ? comp : walked + "/" + comp;
            struct stat st;
            if (::fstatat(curfd, comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
                if (errno != ENOENT) {
                    throw_errno("stat", walked);
                }
                if (over_lowers) {
                    return resolve_merged(path, create);
                }
                if (!create) {
                    return -1;
                }
                if (::mkdirat(curfd, comp.c_str(), 0755) != 0 && errno != EEXIST) {
                    throw_errno("mkdir", walked);
                }
                st.st_mode = S_IFDIR;
            }
            if (S_ISLNK(st.st_mode)) {
                return resolve_merged(path, create);
            }
            if (!S_ISDIR(st.st_mode)) {
                throw SysError("open", walked, ENOTDIR);
            }
            int fd = ::openat(curfd, comp.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0) {
                throw_errno("open", walked);
            }
            cur.reset(fd);
        }
        std::string real = m_cache_key && starts_with(path, *m_cache_key + "/")
                               ? m_cache_real + path.substr(m_cache_key->size())
                               : path;
        m_cache_key = path;
        m_cache_real = std::move(real);
        m_cache_fd = cur ? std::move(cur) : dup_cloexec(m_root);
        return m_cache_fd.get();
    }

    // The slow path of dir_fd: the path resolved in the merged view of the
    // target over the lowers (snapshot/merged_view.hpp), then the resolved
    // directories made in the target where missing. A directory that only a
    // lower layer has is copied up as overlayfs would: its owner, mode and
    // xattrs (mode and mtime set with the layer's own directories at the end).
    int resolve_merged(const std::string& path, bool create) {
        MergedView view(m_root, m_opts.mode == WhiteoutMode::overlay ? m_opts.lower_dirs
                                                                     : std::vector<std::string>{});
        view.set_hidden([this](const std::string& p) { return m_hidden.contains(p); });
        std::optional<std::string> real = view.resolve(path, create);
        if (!real) {
            return -1;
        }
        UniqueFd cur = dup_cloexec(m_root);
        std::string walked;
        for (auto& comp : split_components(*real)) {
            walked = walked.empty() ? comp : walked + "/" + comp;
            int fd =
                ::openat(cur.get(), comp.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0 && errno == ENOENT) {
                if (!create) {
                    return -1;
                }
                copy_up_dir(view, cur.get(), comp, walked);
                fd = ::openat(cur.get(), comp.c_str(),
                              O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            }
            if (fd < 0) {
                throw_errno("open", walked);
            }
            cur.reset(fd);
        }
        m_cache_key = path;
        m_cache_real = *real;
        m_cache_fd = std::move(cur);
        return m_cache_fd.get();
    }

    void copy_up_dir(const MergedView& view, int pfd, const std::string& name,
                     const std::string& real) {
        MergedView::Node lower = view.lookup(real);
        if (lower.layer < 0 || lower.kind != MergedView::Node::Kind::dir) {
            if (::mkdirat(pfd, name.c_str(), 0755) != 0 && errno != EEXIST) {
                throw_errno("mkdir", real);
            }
            return;
        }
        if (::mkdirat(pfd, name.c_str(), 0700) != 0) {
            throw_errno("mkdir", real);
        }
        UniqueFd fd(::openat(pfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd) {
            throw_errno("open", real);
        }
        if (m_preserve_owner && ::fchown(fd.get(), lower.st.st_uid, lower.st.st_gid) != 0 &&
            errno != EPERM && errno != EINVAL) {
            throw_errno("chown", real);
        }
        std::string from = view.lower_path(lower.layer, real);
        std::vector<char> names(1 << 16);
        ssize_t len = ::llistxattr(from.c_str(), names.data(), names.size());
        for (ssize_t i = 0; len > 0 && i < len;) {
            std::string xname(names.data() + i);
            i += static_cast<ssize_t>(xname.size()) + 1;
            if (overlay_xattr(xname)) {
                continue;
            }
            std::vector<char> value(1 << 16);
            ssize_t vlen = ::lgetxattr(from.c_str(), xname.c_str(), value.data(), value.size());
            if (vlen >= 0) {
                ::fsetxattr(fd.get(), xname.c_str(), value.data(), static_cast<std::size_t>(vlen),
                            0);
            }
        }
        m_dirs.push_back(DirMeta{real, lower.st.st_mode & 07777, lower.st.st_mtim.tv_sec,
                                 static_cast<std::uint32_t>(lower.st.st_mtim.tv_nsec)});
    }

    // ---- per entry ----

    void apply(const TarEntry& e) {
        std::string path = checked_name(e.path, "the name");
        if (path.empty()) {
            // The root directory itself: its metadata belongs to the target.
            return;
        }
        auto [parent, base] = fs::split_parent(path);
        if (starts_with(base, k_whiteout_prefix)) {
            apply_whiteout(parent, base);
            return;
        }
        int pfd = dir_fd(parent, true);
        switch (e.type) {
        case EntryType::dir:
            make_dir(pfd, path, base, e, parent.empty() ? base : m_cache_real + "/" + base);
            break;
        case EntryType::file:
            make_file(pfd, path, base, e);
            break;
        case EntryType::symlink:
            make_symlink(pfd, path, base, e);
            break;
        case EntryType::hardlink:
            make_hardlink(pfd, path, base, e);
            break;
        case EntryType::chardev:
        case EntryType::blockdev:
        case EntryType::fifo:
            make_node(pfd, path, base, e);
            break;
        }
        mark_added(path);
    }

    // Records path and its ancestors as brought by this layer, so that an
    // opaque marker later in the layer keeps them.
    void mark_added(const std::string& path) {
        std::string p = path;
        while (m_added.insert(p).second) {
            auto slash = p.rfind('/');
            if (slash == std::string::npos) {
                break;
            }
            p.resize(slash);
        }
    }

    void apply_whiteout(const std::string& parent, const std::string& base) {
        if (base == kOpaqueMarker) {
            apply_opaque(parent);
            return;
        }
        if (starts_with(base, kAufsMetaPrefix)) {
            // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content.
            STRATA_LOG_DEBUG("{}: skipping aufs metadata {}", where(), base);
            return;
        }
        std::string name = base.substr(k_whiteout_prefix.size());
        if (name.empty() || name == "." || name == "..") {
            throw Error("bad whiteout name \"" + base + "\"");
        }
        ++m_stats.whiteouts;
        std::string victim = parent.empty() ? name : parent + "/" + name;
        // A whiteout hides what lower layers have, never what this layer
        // brings, whichever comes first in the tar (OCI image spec): over
        // the overlay form they are made at the end of the layer; a name
        // this layer also has stays, and is opaque if it is a directory.
        if (m_opts.mode == WhiteoutMode::overlay || m_added.contains(victim)) {
            m_whiteouts.emplace_back(parent, name);
            m_hidden.insert(victim);
            return;
        }
        {
            int pfd = dir_fd(parent, false);
            if (pfd < 0) {
                return;
            }
            fs::remove_all_at(pfd, name);
            invalidate();
        }
    }

    void finish_whiteouts() {
        for (const auto& [parent, name] : m_whiteouts) {
            std::string victim = parent.empty() ? name : parent + "/" + name;
            try {
                finish_whiteout(parent, name, victim);
            } catch (const Error& ex) {
                throw Error(where() + ": entry \"" + (parent.empty() ? "" : parent + "/") +
                            std::string(k_whiteout_prefix) + name + "\": " + ex.what());
            }
        }
        m_whiteouts.clear();
    }

    void finish_whiteout(const std::string& parent, const std::string& name,
                         const std::string& victim) {
        {
            if (m_added.contains(victim)) {
                int pfd = dir_fd(parent, false);
                struct stat st;
                if (pfd >= 0 && ::fstatat(pfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                    S_ISDIR(st.st_mode)) {
                    apply_opaque(victim);
                    --m_stats.opaque_dirs; // counted as the whiteout it is
                }
                return;
            }
            int pfd = dir_fd(parent, true);
            replace_existing(pfd, name, false);
            if (::mknodat(pfd, name.c_str(), formats::whiteout::k_device_mode,
                          formats::whiteout::device()) != 0) {
                throw_errno("creating the overlay whiteout (mknod 0:0)", victim);
            }
        }
    }

    void apply_opaque(const std::string& dir) {
        ++m_stats.opaque_dirs;
        if (m_opts.mode == WhiteoutMode::overlay) {
            int pfd = dir_fd(dir, true);
            UniqueFd fd(::openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            if (!fd) {
                throw_errno("open", dir);
            }
            const char* name = formats::whiteout::opaque_xattr(m_opts.userxattr);
            if (::fsetxattr(fd.get(), name, "y", 1, 0) != 0) {
                throw_errno(std::string("setting ") + name + " on", dir.empty() ? "/" : dir);
            }
            return;
        }
        // Flatten: everything below dir that this layer did not add goes.
        int pfd = dir_fd(dir, false);
        if (pfd < 0) {
            return;
        }
        UniqueFd dfd(::openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!dfd) {
            throw_errno("open", dir);
        }
        std::vector<std::string> names;
        {
            DIR* d = ::fdopendir(dup_cloexec(dfd.get()).release());
            if (d == nullptr) {
                throw_errno("opendir", dir);
            }
            while (auto* de = ::readdir(d)) {
                std::string n = de->d_name;
                if (n != "." && n != "..") {
                    names.push_back(std::move(n));
                }
            }
            ::closedir(d);
        }
        for (auto& n : names) {
            std::string child = dir.empty() ? n : dir + "/" + n;
            if (!m_added.contains(child)) {
                fs::remove_all_at(dfd.get(), n);
            }
        }
        invalidate();
    }

    // Makes room for a new entry `name` in pfd. Returns true when an existing
    // directory is kept (keep_dir and it is a directory).
    bool replace_existing(int pfd, const std::string& name, bool keep_dir) {
        struct stat st;
        if (::fstatat(pfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) {
                return false;
            }
            throw_errno("stat", name);
        }
        if (keep_dir && S_ISDIR(st.st_mode)) {
            return true;
        }
        if (S_ISDIR(st.st_mode)) {
            fs::remove_all_at(pfd, name);
        } else if (::unlinkat(pfd, name.c_str(), 0) != 0 && errno != ENOENT) {
            throw_errno("unlink", name);
        }
        invalidate();
        return false;
    }

    void set_xattrs(int fd, const std::string& path, const TarEntry& e, bool is_link, int pfd,
                    const std::string& base) {
        for (const auto& [name, value] : e.xattrs) {
            if (overlay_xattr(name)) {
                ++m_stats.xattrs_skipped;
                STRATA_LOG_WARN("{}: entry \"{}\": ignoring xattr {} (reserved for overlayfs)",
                                where(), path, name);
                continue;
            }
            int r;
            if (is_link) {
                std::string proc = "/proc/self/fd/" + std::to_string(pfd) + "/" + base;
                r = ::lsetxattr(proc.c_str(), name.c_str(), value.data(), value.size(), 0);
            } else {
                r = ::fsetxattr(fd, name.c_str(), value.data(), value.size(), 0);
            }
            if (r != 0) {
                if (errno == ENOTSUP || errno == EPERM || errno == EACCES) {
                    ++m_stats.xattrs_skipped;
                    STRATA_LOG_WARN("{}: entry \"{}\": cannot set xattr {}: {}", where(), path,
                                    name, std::strerror(errno));
                    continue;
                }
                throw_errno("setxattr " + name, path);
            }
        }
    }

    void chown_at(int pfd, const std::string& base, const std::string& path, const TarEntry& e,
                  int fd) {
        if (!m_preserve_owner) {
            if (e.uid != ::geteuid() || e.gid != ::getegid()) {
                ++m_stats.owners_skipped;
            }
            return;
        }
        int r = fd >= 0 ? ::fchown(fd, e.uid, e.gid)
                        : ::fchownat(pfd, base.c_str(), e.uid, e.gid, AT_SYMLINK_NOFOLLOW);
        if (r != 0) {
            if (errno == EPERM || errno == EINVAL) {
                ++m_stats.owners_skipped;
                if (!m_owner_warned) {
                    m_owner_warned = true;
                    STRATA_LOG_WARN("{}: cannot set owner {}:{} of \"{}\" ({}); keeping the "
                                    "current owner for this and similar entries",
                                    where(), e.uid, e.gid, path, std::strerror(errno));
                }
                return;
            }
            throw_errno("chown", path);
        }
    }

    static struct timespec ts_of(const TarEntry& e) {
        struct timespec t;
        t.tv_sec = static_cast<time_t>(e.mtime_sec);
        t.tv_nsec = static_cast<long>(e.mtime_nsec);
        return t;
    }

    // real: the directory's path with the symlinks of its parents resolved.
    void make_dir(int pfd, const std::string& path, const std::string& base, const TarEntry& e,
                  const std::string& real) {
        ++m_stats.dirs;
        if (::mkdirat(pfd, base.c_str(), 0700) != 0) {
            if (errno != EEXIST) {
                throw_errno("mkdir", path);
            }
            if (!replace_existing(pfd, base, true)) {
                if (::mkdirat(pfd, base.c_str(), 0700) != 0) {
                    throw_errno("mkdir", path);
                }
            }
        }
        UniqueFd fd(::openat(pfd, base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd) {
            throw_errno("open", path);
        }
        chown_at(pfd, base, path, e, fd.get());
        // Owner-only access until the end, so that a 0555 directory can
        // still be filled by an unprivileged user; the mode and mtime are
        // set once every entry is in.
        if (::fchmod(fd.get(), 0700) != 0) {
            throw_errno("chmod", path);
        }
        set_xattrs(fd.get(), path, e, false, pfd, base);
        m_dirs.push_back(DirMeta{real, e.mode, e.mtime_sec, e.mtime_nsec});
    }

    void make_file(int pfd, const std::string& path, const std::string& base, const TarEntry& e) {
        ++m_stats.files;
        int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
        UniqueFd fd(::openat(pfd, base.c_str(), flags, 0600));
        if (!fd && errno == EEXIST) {
            replace_existing(pfd, base, false);
            fd.reset(::openat(pfd, base.c_str(), flags, 0600));
        }
        if (!fd) {
            throw_errno("create", path);
        }
        if (e.size > 0) {
            m_reader.copy_to(fd.get());
            m_stats.bytes += e.size;
        }
        finish_fd(fd.get(), pfd, path, base, e);
    }

    void finish_fd(int fd, int pfd, const std::string& path, const std::string& base,
                   const TarEntry& e) {
        chown_at(pfd, base, path, e, fd);
        // After chown, which clears setuid/setgid.
        if (::fchmod(fd, e.mode & 07777) != 0) {
            throw_errno("chmod", path);
        }
        set_xattrs(fd, path, e, false, pfd, base);
        struct timespec ts[2] = {ts_of(e), ts_of(e)};
        if (::futimens(fd, ts) != 0) {
            throw_errno("utimens", path);
        }
    }

    void make_symlink(int pfd, const std::string& path, const std::string& base,
                      const TarEntry& e) {
        ++m_stats.symlinks;
        if (::symlinkat(e.linkname.c_str(), pfd, base.c_str()) != 0) {
            if (errno != EEXIST) {
                throw_errno("symlink", path);
            }
            replace_existing(pfd, base, false);
            if (::symlinkat(e.linkname.c_str(), pfd, base.c_str()) != 0) {
                throw_errno("symlink", path);
            }
        }
        chown_at(pfd, base, path, e, -1);
        set_xattrs(-1, path, e, true, pfd, base);
        struct timespec ts[2] = {ts_of(e), ts_of(e)};
        if (::utimensat(pfd, base.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
            throw_errno("utimens", path);
        }
    }

    void make_hardlink(int pfd, const std::string& path, const std::string& base,
                       const TarEntry& e) {
        ++m_stats.hardlinks;
        std::string target = checked_name(e.linkname, "the hard link target");
        if (target.empty()) {
            throw Error("hard link with an empty target");
        }
        if (target == path) {
            throw Error("hard link to itself");
        }
        auto [tparent, tbase] = fs::split_parent(target);
        // Resolve the target's directory first (not cached: it differs from
        // the entry's parent), then the entry's parent again.
        UniqueFd tdir;
        {
            int t = dir_fd(tparent, false);
            if (t >= 0) {
                tdir = dup_cloexec(t);
            }
        }
        struct stat st;
        bool found = tdir && ::fstatat(tdir.get(), tbase.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
        if (!found && m_opts.mode == WhiteoutMode::overlay && !m_opts.lower_dirs.empty()) {
            found = copy_up(target);
            if (found) {
                tdir = dup_cloexec(dir_fd(tparent, false));
            }
        }
        if (!found) {
            throw Error("hard link target \"" + e.linkname +
                        "\" does not exist in the layer or below it");
        }
        pfd = dir_fd(fs::split_parent(path).first, true);
        if (::linkat(tdir.get(), tbase.c_str(), pfd, base.c_str(), 0) != 0) {
            if (errno != EEXIST) {
                throw_errno("link to \"" + e.linkname + "\"", path);
            }
            replace_existing(pfd, base, false);
            pfd = dir_fd(fs::split_parent(path).first, true);
            if (::linkat(tdir.get(), tbase.c_str(), pfd, base.c_str(), 0) != 0) {
                throw_errno("link to \"" + e.linkname + "\"", path);
            }
        }
    }

    // Overlay mode: copies a regular file that a hard link names from the
    // topmost lower layer that shows it (the merged view) into the snapshot.
    bool copy_up(const std::string& target) {
        MergedView view(m_root, m_opts.lower_dirs);
        view.set_hidden([this](const std::string& p) { return m_hidden.contains(p); });
        auto [tparent, tbase] = fs::split_parent(target);
        std::optional<std::string> real_parent = view.resolve(tparent, false);
        if (!real_parent) {
            return false;
        }
        std::string real = real_parent->empty() ? tbase : *real_parent + "/" + tbase;
        MergedView::Node node = view.lookup(real);
        if (node.layer < 0 || !S_ISREG(node.st.st_mode)) {
            return false;
        }
        const std::string src_path = view.lower_path(node.layer, real);
        UniqueFd src(::open(src_path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!src) {
            throw_errno("open", src_path);
        }
        struct stat st = fs::fstat(src.get());
        int pfd = dir_fd(tparent, true);
        UniqueFd dst(::openat(pfd, tbase.c_str(),
                              O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!dst) {
            throw_errno("copy-up", target);
        }
        std::vector<char> buf(1 << 16);
        for (;;) {
            std::size_t n = fs::read_full(src.get(), src_path, buf.data(), buf.size());
            if (n == 0) {
                break;
            }
            fs::write_all(dst.get(), target, buf.data(), n);
        }
        if (m_preserve_owner && ::fchown(dst.get(), st.st_uid, st.st_gid) != 0) {
            ++m_stats.owners_skipped;
        }
        ::fchmod(dst.get(), st.st_mode & 07777);
        struct timespec ts[2] = {st.st_atim, st.st_mtim};
        ::futimens(dst.get(), ts);
        return true;
    }

    void make_node(int pfd, const std::string& path, const std::string& base, const TarEntry& e) {
        mode_t type = e.type == EntryType::fifo      ? S_IFIFO
                      : e.type == EntryType::chardev ? S_IFCHR
                                                     : S_IFBLK;
        dev_t dev = e.type == EntryType::fifo ? 0 : makedev(e.devmajor, e.devminor);
        if (e.type == EntryType::fifo) {
            ++m_stats.fifos;
        } else {
            ++m_stats.devices;
        }
        if (::mknodat(pfd, base.c_str(), type | 0600, dev) != 0) {
            int err = errno;
            if (err == EEXIST) {
                replace_existing(pfd, base, false);
                if (::mknodat(pfd, base.c_str(), type | 0600, dev) == 0) {
                    err = 0;
                } else {
                    err = errno;
                }
            }
            if (err == EPERM && e.type != EntryType::fifo) {
                ++m_stats.devices_skipped;
                STRATA_LOG_WARN("{}: entry \"{}\": cannot create device {}:{} without privilege; "
                                "skipped",
                                where(), path, e.devmajor, e.devminor);
                return;
            }
            if (err != 0) {
                throw SysError("mknod", path, err);
            }
        }
        chown_at(pfd, base, path, e, -1);
        if (::fchmodat(pfd, base.c_str(), e.mode & 07777, 0) != 0) {
            throw_errno("chmod", path);
        }
        if (!e.xattrs.empty()) {
            // Opening a FIFO or device to set xattrs could block or act on
            // the device; go through the O_PATH-free proc path instead.
            set_xattrs(-1, path, e, true, pfd, base);
        }
        struct timespec ts[2] = {ts_of(e), ts_of(e)};
        if (::utimensat(pfd, base.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
            throw_errno("utimens", path);
        }
    }

    // Directory modes and mtimes go last: writing children changes the
    // mtime, and a read-only mode would stop the writes.
    void finish_dirs() {
        invalidate();
        for (auto it = m_dirs.rbegin(); it != m_dirs.rend(); ++it) {
            int fd = sys::openat2_raw(
                m_root, it->path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0,
                RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
            UniqueFd dfd;
            if (fd >= 0) {
                dfd.reset(fd);
            } else if (fd == -ENOSYS) {
                try {
                    dfd = open_in_root(m_root, it->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
                } catch (const SysError&) {
                    continue;
                }
            } else {
                continue; // replaced or removed by a later entry
            }
            if (::fchmod(dfd.get(), it->mode & 07777) != 0) {
                throw_errno("chmod", it->path);
            }
            struct timespec ts[2];
            ts[0].tv_sec = ts[1].tv_sec = static_cast<time_t>(it->sec);
            ts[0].tv_nsec = ts[1].tv_nsec = static_cast<long>(it->nsec);
            if (::futimens(dfd.get(), ts) != 0) {
                throw_errno("utimens", it->path);
            }
        }
    }

    formats::TarReader& m_reader;
    int m_root;
    const ApplyOptions& m_opts;
    bool m_preserve_owner;
    bool m_owner_warned = false;
    ApplyStats m_stats;
    std::optional<std::string> m_cache_key;
    std::string m_cache_real;
    UniqueFd m_cache_fd;
    UniqueFd m_keepalive;
    std::unordered_set<std::string> m_added; // paths this layer brings, and their parents
    // Paths this layer whites out: lower layers are not looked at below them.
    std::unordered_set<std::string> m_hidden;
    std::vector<std::pair<std::string, std::string>> m_whiteouts; // (parent, name), made last
    std::vector<DirMeta> m_dirs;
};

} // namespace

ApplyStats apply_entries(formats::TarReader& reader, int target_dirfd, const ApplyOptions& opts) {
    Applier applier(reader, target_dirfd, opts);
    return applier.run();
}

ApplyStats apply_layer_at(int layer_fd, int target_dirfd, const ApplyOptions& opts) {
    std::string name = opts.layer_name.empty() ? std::string("layer") : opts.layer_name;
    formats::TarReader reader(layer_fd, name);
    ApplyStats stats = apply_entries(reader, target_dirfd, opts);
    stats.digests = reader.finish();
    return stats;
}

ApplyStats apply_layer(int layer_fd, const std::string& target_dir, const ApplyOptions& opts) {
    UniqueFd root = fs::open_dir(target_dir);
    return apply_layer_at(layer_fd, root.get(), opts);
}

} // namespace strata::snapshot
