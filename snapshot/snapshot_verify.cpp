#include "snapshot/snapshot_verify.hpp"

#include "formats/tar.hpp"
#include "formats/whiteout.hpp"
#include "snapshot/merged_view.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/root.hpp"
#include "util/sha256.hpp"
#include "util/sys/syscalls.hpp"

#include <cerrno>
#include <climits>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/openat2.h>
#include <map>
#include <optional>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <unordered_set>

namespace strata::snapshot {

using formats::EntryType;

namespace {

constexpr std::string_view k_whiteout_prefix = formats::whiteout::k_prefix;
constexpr std::string_view kOpaqueMarker = formats::whiteout::k_opaque_marker;
constexpr std::string_view kAufsMetaPrefix = formats::whiteout::k_aufs_meta_prefix;

bool starts_with(std::string_view s, std::string_view p) {
    return s.substr(0, p.size()) == p;
}

bool overlay_xattr(std::string_view name) {
    return formats::whiteout::is_overlay_xattr(name);
}

// "a//b/./c" -> "a/b/c"; nullopt for a ".." component (the applier refuses those).
std::optional<std::string> clean_name(std::string_view raw) {
    std::string out;
    std::size_t i = 0;
    while (i <= raw.size()) {
        std::size_t j = raw.find('/', i);
        if (j == std::string_view::npos) {
            j = raw.size();
        }
        std::string_view c = raw.substr(i, j - i);
        i = j + 1;
        if (c.empty() || c == ".") {
            continue;
        }
        if (c == "..") {
            return std::nullopt;
        }
        if (!out.empty()) {
            out += '/';
        }
        out += c;
    }
    return out;
}

const char* type_name(mode_t m) {
    switch (m & S_IFMT) {
    case S_IFREG:
        return "a regular file";
    case S_IFDIR:
        return "a directory";
    case S_IFLNK:
        return "a symlink";
    case S_IFCHR:
        return "a character device";
    case S_IFBLK:
        return "a block device";
    case S_IFIFO:
        return "a FIFO";
    case S_IFSOCK:
        return "a socket";
    default:
        return "an unknown file type";
    }
}

mode_t type_bits(EntryType t) {
    switch (t) {
    case EntryType::file:
    case EntryType::hardlink:
        return S_IFREG;
    case EntryType::dir:
        return S_IFDIR;
    case EntryType::symlink:
        return S_IFLNK;
    case EntryType::chardev:
        return S_IFCHR;
    case EntryType::blockdev:
        return S_IFBLK;
    case EntryType::fifo:
        return S_IFIFO;
    }
    return 0;
}

using Xattrs = std::map<std::string, std::string>;

std::string shown(const std::string& rel) {
    return "/" + rel;
}

std::string read_link(const std::string& path) {
    std::vector<char> buf(PATH_MAX + 1);
    ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
    if (n < 0) {
        throw_errno("readlink", path);
    }
    return std::string(buf.data(), static_cast<std::size_t>(n));
}

std::string quoted(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\') {
            out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        } else {
            out += c;
        }
    }
    return out + "\"";
}

struct Expect {
    enum class Kind {
        entry,    // a tar entry (a hard link copies its target's expectation)
        implicit, // a directory the applier made for an opaque marker
        whiteout, // an overlay whiteout from a .wh.NAME entry
        copyup,   // a hard-link target copied up from a lower snapshot
    };
    Kind kind = Kind::entry;
    EntryType type = EntryType::file;
    std::uint32_t mode = 0;
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
    std::uint64_t size = 0;
    std::string sha256; // hex, regular files
    std::string linkname;
    std::uint32_t devmajor = 0;
    std::uint32_t devminor = 0;
    Xattrs xattrs;
    bool opaque = false;
    std::uint64_t serial = 0; // which record this is (hard links check their target's)
    // Hard links: the target path and its record's serial at link time.
    std::string link_target;
    std::uint64_t link_serial = 0;
};

class Verifier {
public:
    Verifier(formats::TarReader& reader, std::string layer_name, int root,
             const std::vector<std::string>& lowers)
        : m_reader(reader), m_layer_name(std::move(layer_name)), m_root(root), m_lowers(lowers),
          m_owners(::geteuid() == 0) {}

    SnapshotCheck run() {
        m_root_real = read_link("/proc/self/fd/" + std::to_string(m_root));
        read_layer();
        check_entries();
        walk(m_root, "");
        return std::move(m_out);
    }

private:
    void problem(const std::string& rel, std::string what) {
        m_out.mismatches.push_back({shown(rel), std::move(what)});
    }

    // ---- phase 1: what the layer says

    void erase_below(const std::string& path) {
        std::string prefix = path + "/";
        for (auto it = m_expect.lower_bound(prefix);
             it != m_expect.end() && starts_with(it->first, prefix);) {
            it = m_expect.erase(it);
        }
    }

    void put(const std::string& path, Expect e) {
        e.serial = ++m_serial;
        auto it = m_expect.find(path);
        if (it != m_expect.end()) {
            bool old_dir =
                it->second.type == EntryType::dir && it->second.kind != Expect::Kind::whiteout;
            bool new_dir = e.type == EntryType::dir && e.kind != Expect::Kind::whiteout;
            if (old_dir && new_dir) {
                // The applier keeps the directory: its opaque mark and the
                // xattrs set before stay.
                e.opaque = e.opaque || it->second.opaque;
                for (const auto& [k, v] : it->second.xattrs) {
                    e.xattrs.emplace(k, v);
                }
            } else if (old_dir) {
                erase_below(path);
            }
            it->second = std::move(e);
        } else {
            m_expect.emplace(path, std::move(e));
        }
    }

    void read_layer() {
        std::vector<char> buf(1 << 16);
        while (auto te = m_reader.next()) {
            ++m_out.entries;
            auto path = clean_name(te->path);
            if (!path) {
                throw Error("layer " + m_layer_name + ": entry " + quoted(te->path) +
                            " has a \"..\" component");
            }
            if (path->empty()) {
                continue; // the root: its metadata is the snapshot's own
            }
            auto [parent, base] = fs::split_parent(*path);
            if (starts_with(base, k_whiteout_prefix)) {
                if (base == kOpaqueMarker) {
                    auto it = m_expect.find(parent);
                    if (it != m_expect.end() && it->second.type == EntryType::dir &&
                        it->second.kind != Expect::Kind::whiteout) {
                        it->second.opaque = true;
                    } else if (!parent.empty()) {
                        Expect e;
                        e.kind = Expect::Kind::implicit;
                        e.type = EntryType::dir;
                        e.opaque = true;
                        put(parent, std::move(e));
                    } else {
                        m_root_opaque = true;
                    }
                } else if (!starts_with(base, kAufsMetaPrefix)) {
                    // Made at the end of the layer, as the applier makes them.
                    std::string name = base.substr(k_whiteout_prefix.size());
                    m_whiteouts.push_back(parent.empty() ? name : parent + "/" + name);
                }
                continue;
            }
            Expect e;
            e.type = te->type;
            e.mode = te->mode & 07777;
            e.uid = te->uid;
            e.gid = te->gid;
            e.linkname = te->linkname;
            e.devmajor = te->devmajor;
            e.devminor = te->devminor;
            for (const auto& [k, v] : te->xattrs) {
                if (!overlay_xattr(k)) {
                    e.xattrs.emplace(k, v);
                }
            }
            if (te->type == EntryType::file) {
                Sha256 h;
                std::uint64_t total = 0;
                while (std::size_t n = m_reader.read(buf.data(), buf.size())) {
                    h.update(buf.data(), n);
                    total += n;
                }
                e.size = total;
                e.sha256 = h.finish_hex();
            } else if (te->type == EntryType::hardlink) {
                auto target = clean_name(te->linkname);
                if (!target || target->empty()) {
                    throw Error("layer " + m_layer_name + ": entry " + quoted(te->path) +
                                ": bad hard link target " + quoted(te->linkname));
                }
                auto it = m_expect.find(*target);
                if (it != m_expect.end() && it->second.kind != Expect::Kind::whiteout) {
                    Expect linked = it->second;
                    linked.link_target = *target;
                    linked.link_serial = it->second.serial;
                    put(*path, std::move(linked));
                } else {
                    // The target comes from a lower snapshot: copied up.
                    Expect c;
                    c.kind = Expect::Kind::copyup;
                    c.linkname = *target;
                    put(*target, c);
                    c.link_target = *target;
                    c.link_serial = m_serial;
                    put(*path, std::move(c));
                }
                continue;
            }
            put(*path, std::move(e));
        }
        // A whiteout hides lower layers only: a name this layer brings (or a
        // directory it fills) stays, opaque when it is a directory.
        for (const auto& victim : m_whiteouts) {
            auto it = m_expect.find(victim);
            bool brought = it != m_expect.end() && it->second.kind != Expect::Kind::whiteout;
            auto below = m_expect.lower_bound(victim + "/");
            bool filled = below != m_expect.end() && starts_with(below->first, victim + "/");
            if (brought && it->second.type == EntryType::dir) {
                it->second.opaque = true;
                continue;
            }
            if (brought) {
                continue;
            }
            if (filled) {
                Expect e;
                e.kind = Expect::Kind::implicit;
                e.type = EntryType::dir;
                e.opaque = true;
                put(victim, std::move(e));
                continue;
            }
            Expect e;
            e.kind = Expect::Kind::whiteout;
            e.type = EntryType::chardev;
            put(victim, std::move(e));
        }
        m_whiteouts.clear();
    }

    // ---- phase 2: each expected path in the snapshot

    struct Parent {
        std::string path; // as expected (lexical)
        UniqueFd fd;      // O_PATH directory, resolved inside the root
        std::string real; // its path relative to the root, symlinks resolved
        bool missing = false;
    };

    // Resolves the parent directory of rel inside the root (cached: the map
    // is in path order, so siblings come together).
    Parent& parent_of(const std::string& rel) {
        std::string p = fs::split_parent(rel).first;
        if (m_parent && m_parent->path == p) {
            return *m_parent;
        }
        m_parent.emplace();
        m_parent->path = p;
        if (p.empty()) {
            m_parent->fd = dup_cloexec(m_root);
            return *m_parent;
        }
        try {
            m_parent->fd = open_in_root(m_root, p, O_PATH | O_DIRECTORY);
        } catch (const SysError& e) {
            if (e.error_code() != ENOENT && e.error_code() != ENOTDIR) {
                throw;
            }
            // The applier follows the lower layers' symlinks too: the
            // parent resolved in the merged view (snapshot/merged_view.hpp).
            std::optional<std::string> real;
            if (!m_lowers.empty()) {
                real = MergedView(m_root, m_lowers).resolve(p, false);
            }
            if (real) {
                int fd = sys::openat2_raw(m_root, real->empty() ? "." : real->c_str(),
                                          O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                                          RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS);
                if (fd >= 0) {
                    m_parent->fd.reset(fd);
                    m_parent->real = *real;
                    return *m_parent;
                }
            }
            m_parent->missing = true;
            return *m_parent;
        }
        std::string real = read_link("/proc/self/fd/" + std::to_string(m_parent->fd.get()));
        if (real == m_root_real) {
            real.clear();
        } else if (starts_with(real, m_root_real + "/")) {
            real = real.substr(m_root_real.size() + 1);
        }
        m_parent->real = real;
        return *m_parent;
    }

    std::string fd_path(int dirfd, const std::string& name) const {
        return "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
    }

    std::optional<std::pair<std::string, struct stat>> lookup_lower(const std::string& rel) {
        for (const auto& lower : m_lowers) {
            try {
                UniqueFd lroot = fs::open_dir(lower);
                UniqueFd f = open_in_root(lroot.get(), rel, O_RDONLY | O_NOFOLLOW);
                struct stat st = fs::fstat(f.get());
                if (!S_ISREG(st.st_mode)) {
                    continue;
                }
                return std::make_pair(hash_fd(f.get(), lower + "/" + rel), st);
            } catch (const SysError&) {
                continue;
            }
        }
        return std::nullopt;
    }

    // path: what fd is, for errors.
    std::string hash_fd(int fd, const std::string& path) {
        Sha256 h;
        std::vector<char> buf(1 << 16);
        while (std::size_t n = fs::read_full(fd, path, buf.data(), buf.size())) {
            h.update(buf.data(), n);
        }
        return h.finish_hex();
    }

    void check_entries() {
        std::map<std::string, struct stat> seen; // for hard links
        for (const auto& [rel, e] : m_expect) {
            Parent& p = parent_of(rel);
            std::string name = fs::split_parent(rel).second;
            struct stat st;
            bool found =
                !p.missing && ::fstatat(p.fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
            if (!found) {
                if (!p.missing && errno != ENOENT) {
                    throw_errno("stat", shown(rel));
                }
                bool device = e.kind == Expect::Kind::entry &&
                              (e.type == EntryType::chardev || e.type == EntryType::blockdev);
                if (device && !m_owners) {
                    continue; // an unprivileged unpack skips devices
                }
                problem(rel, e.kind == Expect::Kind::whiteout ? "whiteout is missing"
                                                              : "missing (the layer has it)");
                continue;
            }
            m_checked.insert(p.real.empty() ? name : p.real + "/" + name);
            seen.emplace(rel, st);
            std::string at = fd_path(p.fd.get(), name);
            Xattrs xattrs = fs::read_xattrs(at);
            check_one(rel, e, st, p.fd.get(), name, xattrs);
        }
        // Hard links: the same inode as their target, unless a later entry
        // replaced the target (the link keeps the old file then).
        for (const auto& [rel, e] : m_expect) {
            if (e.link_target.empty()) {
                continue;
            }
            auto t = m_expect.find(e.link_target);
            auto ls = seen.find(rel);
            auto ts = seen.find(e.link_target);
            if (t != m_expect.end() && t->second.serial == e.link_serial && ls != seen.end() &&
                ts != seen.end() &&
                (ts->second.st_dev != ls->second.st_dev ||
                 ts->second.st_ino != ls->second.st_ino)) {
                problem(rel, "is not a hard link to /" + e.link_target + " as in the layer");
            }
        }
        if (m_root_opaque) {
            Xattrs x = fs::read_xattrs(fd_path(m_root, "."));
            if (!is_opaque(x)) {
                problem("", "is not marked opaque (the layer has an opaque marker for it)");
            }
        }
    }

    static bool is_opaque(const Xattrs& x) { return formats::whiteout::has_opaque_xattr(x); }

    static bool is_whiteout(const struct stat& st, const Xattrs& x) {
        return formats::whiteout::is_overlay_whiteout(st, x);
    }

    // The xattrs compared: not overlayfs's own; only user.* when not root
    // (the applier cannot set the others then); security.selinux only when
    // the layer has it (a labelling system adds it by itself).
    Xattrs comparable(const Xattrs& x, const Xattrs& expected) const {
        Xattrs out;
        for (const auto& [k, v] : x) {
            if (overlay_xattr(k) || (!m_owners && !starts_with(k, "user.")) ||
                (k == "security.selinux" && !expected.contains(k))) {
                continue;
            }
            out.emplace(k, v);
        }
        return out;
    }

    void check_xattrs(const std::string& rel, const Xattrs& actual_all,
                      const Xattrs& expected_all) {
        Xattrs expected = comparable(expected_all, expected_all);
        Xattrs actual = comparable(actual_all, expected_all);
        for (const auto& [k, v] : expected) {
            auto it = actual.find(k);
            if (it == actual.end()) {
                problem(rel, "xattr " + k + " is missing (the layer sets it)");
            } else if (it->second != v) {
                problem(rel, "xattr " + k + " is " + quoted(it->second) + ", the layer has " +
                                 quoted(v));
            }
        }
        for (const auto& [k, v] : actual) {
            if (!expected.contains(k)) {
                problem(rel, "has xattr " + k + " that the layer does not set");
            }
        }
    }

    void check_one(const std::string& rel, const Expect& e, const struct stat& st, int pfd,
                   const std::string& name, const Xattrs& xattrs) {
        if (e.kind == Expect::Kind::whiteout) {
            if (!is_whiteout(st, xattrs)) {
                problem(rel, fmt::format("is {}, the layer has a whiteout (a 0:0 character device)",
                                         type_name(st.st_mode)));
            }
            return;
        }
        if (is_whiteout(st, xattrs)) {
            problem(rel,
                    std::string("is an overlay whiteout, the layer has ") +
                        type_name(e.kind == Expect::Kind::entry ? type_bits(e.type) : S_IFREG));
            return;
        }
        if (e.kind == Expect::Kind::implicit) {
            if (!S_ISDIR(st.st_mode)) {
                problem(rel,
                        fmt::format("is {}, the layer has a directory", type_name(st.st_mode)));
            } else if (!is_opaque(xattrs)) {
                problem(rel, "is not marked opaque (the layer has an opaque marker for it)");
            }
            return;
        }
        if (e.kind == Expect::Kind::copyup) {
            if (!S_ISREG(st.st_mode)) {
                problem(rel, fmt::format("is {}, the layer has a hard link to a file below it",
                                         type_name(st.st_mode)));
                return;
            }
            auto lower = lookup_lower(e.linkname);
            if (!lower) {
                return; // nothing to compare with (no lower snapshot at hand)
            }
            const auto& [sha, lst] = *lower;
            if ((st.st_mode & 07777) != (lst.st_mode & 07777)) {
                problem(rel, fmt::format("mode is {:04o}, the file below it (/{}) has {:04o}",
                                         st.st_mode & 07777, e.linkname, lst.st_mode & 07777));
            }
            if (st.st_size != lst.st_size) {
                problem(rel, fmt::format("size is {}, the file below it (/{}) has {}", st.st_size,
                                         e.linkname, lst.st_size));
            } else {
                UniqueFd f = fs::open_at(pfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                std::string got = hash_fd(f.get(), m_root_real + "/" + rel);
                if (got != sha) {
                    problem(rel, "content hashes to sha256:" + got + ", the file below it (/" +
                                     e.linkname + ") to sha256:" + sha);
                }
            }
            return;
        }
        mode_t want = type_bits(e.type);
        if ((st.st_mode & S_IFMT) != want) {
            problem(rel,
                    fmt::format("is {}, the layer has {}", type_name(st.st_mode), type_name(want)));
            return;
        }
        if (e.type != EntryType::symlink && (st.st_mode & 07777) != e.mode) {
            problem(rel, fmt::format("mode is {:04o}, the layer has {:04o}", st.st_mode & 07777,
                                     e.mode));
        }
        if (m_owners && (st.st_uid != e.uid || st.st_gid != e.gid)) {
            problem(rel, fmt::format("owner is {}:{}, the layer has {}:{}", st.st_uid, st.st_gid,
                                     e.uid, e.gid));
        }
        switch (e.type) {
        case EntryType::file:
        case EntryType::hardlink:
            if (static_cast<std::uint64_t>(st.st_size) != e.size) {
                problem(rel, fmt::format("size is {}, the layer has {}", st.st_size, e.size));
            } else {
                UniqueFd f = fs::open_at(pfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                std::string got = hash_fd(f.get(), m_root_real + "/" + rel);
                if (got != e.sha256) {
                    problem(rel, "content hashes to sha256:" + got +
                                     ", the layer has sha256:" + e.sha256);
                }
            }
            break;
        case EntryType::symlink: {
            std::vector<char> buf(static_cast<std::size_t>(st.st_size) + 2);
            ssize_t n = ::readlinkat(pfd, name.c_str(), buf.data(), buf.size());
            if (n < 0) {
                throw_errno("readlink", shown(rel));
            }
            std::string target(buf.data(), static_cast<std::size_t>(n));
            if (target != e.linkname) {
                problem(rel, "symlink target is " + quoted(target) + ", the layer has " +
                                 quoted(e.linkname));
            }
            break;
        }
        case EntryType::chardev:
        case EntryType::blockdev:
            if (major(st.st_rdev) != e.devmajor || minor(st.st_rdev) != e.devminor) {
                problem(rel, fmt::format("device is {}:{}, the layer has {}:{}", major(st.st_rdev),
                                         minor(st.st_rdev), e.devmajor, e.devminor));
            }
            break;
        case EntryType::dir:
            if (e.opaque != is_opaque(xattrs)) {
                problem(rel, e.opaque
                                 ? "is not marked opaque (the layer has an opaque marker for it)"
                                 : "is marked opaque, the layer has no opaque marker for it");
            }
            break;
        case EntryType::fifo:
            break;
        }
        check_xattrs(rel, xattrs, e.xattrs);
    }

    // ---- phase 3: what the snapshot has beyond the layer

    // Returns true when the subtree holds a checked entry. Unchecked
    // directories are the applier's implicit parents when something below
    // them was checked, else reported (once, not with all they contain).
    bool walk(int dirfd, const std::string& rel) {
        bool any = false;
        std::vector<std::string> unchecked_dirs;
        for (const auto& name : fs::list_dir_at(dirfd)) {
            std::string crel = rel.empty() ? name : rel + "/" + name;
            struct stat st;
            if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
                throw_errno("stat", shown(crel));
            }
            bool checked = m_checked.contains(crel);
            any = any || checked;
            if (S_ISDIR(st.st_mode)) {
                UniqueFd sub(
                    ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
                if (!sub) {
                    throw_errno("open", shown(crel));
                }
                std::size_t mark = m_out.mismatches.size();
                bool below = walk(sub.get(), crel);
                any = any || below;
                if (!checked && !below) {
                    // A whole tree the layer does not have: one report.
                    std::size_t inside = count_below(dirfd, name);
                    m_out.mismatches.resize(mark);
                    problem(crel, inside == 0
                                      ? std::string("a directory the layer does not have")
                                      : fmt::format("a directory the layer does not have ({} "
                                                    "entries in it)",
                                                    inside));
                }
            } else if (!checked) {
                problem(crel, fmt::format("{} the layer does not have", type_name(st.st_mode)));
            }
        }
        return any;
    }

    // Entries below directory `name` of dirfd (a fresh fd: a listed one has
    // its directory offset at the end).
    static std::size_t count_below(int dirfd, const std::string& name) {
        UniqueFd dir(
            ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!dir) {
            return 0;
        }
        std::size_t n = 0;
        for (const auto& child : fs::list_dir_at(dir.get())) {
            n += 1 + count_below(dir.get(), child);
        }
        return n;
    }

    formats::TarReader& m_reader;
    std::string m_layer_name;
    int m_root;
    const std::vector<std::string>& m_lowers;
    bool m_owners;
    std::map<std::string, Expect> m_expect;
    std::vector<std::string> m_whiteouts; // victims of this layer's .wh. entries
    std::uint64_t m_serial = 0;
    bool m_root_opaque = false;
    std::optional<Parent> m_parent;
    std::string m_root_real;
    std::unordered_set<std::string> m_checked;
    SnapshotCheck m_out;
};

} // namespace

SnapshotCheck verify_snapshot(int layer_fd, const std::string& layer_name,
                              const std::string& snapshot_dir,
                              const std::vector<std::string>& lower_dirs) {
    UniqueFd root = fs::open_dir(snapshot_dir);
    formats::TarReader reader(layer_fd, layer_name);
    Verifier v(reader, layer_name, root.get(), lower_dirs);
    SnapshotCheck r = v.run();
    reader.finish();
    return r;
}

} // namespace strata::snapshot
