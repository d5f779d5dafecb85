#include "builder/copy.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/root.hpp"
#include "util/sha256.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <memory>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <utility>

namespace strata::builder {

// ------------------------------------------------------------ path_match

namespace {

struct BadPattern {};

// Decodes one UTF-8 code point (invalid bytes count as one U+FFFD each).
std::size_t decode(std::string_view s, char32_t& cp) {
    auto b = static_cast<unsigned char>(s[0]);
    std::size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (n == 0 || n > s.size()) {
        cp = 0xFFFD;
        return 1;
    }
    if (n == 1) {
        cp = b;
        return 1;
    }
    cp = b & (0x7F >> n);
    for (std::size_t i = 1; i < n; ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        if ((c & 0xC0) != 0x80) {
            cp = 0xFFFD;
            return 1;
        }
        cp = (cp << 6) | (c & 0x3F);
    }
    return n;
}

char32_t get_esc(std::string_view& chunk) {
    if (chunk.empty() || chunk[0] == '-' || chunk[0] == ']') {
        throw BadPattern{};
    }
    if (chunk[0] == '\\') {
        chunk.remove_prefix(1);
        if (chunk.empty()) {
            throw BadPattern{};
        }
    }
    char32_t r;
    std::size_t n = decode(chunk, r);
    chunk.remove_prefix(n);
    if (chunk.empty()) {
        throw BadPattern{};
    }
    return r;
}

// Go's matchChunk: returns the rest of s after the chunk, or nullopt.
std::optional<std::string_view> match_chunk(std::string_view chunk, std::string_view s) {
    bool failed = false;
    while (!chunk.empty()) {
        if (!failed && s.empty()) {
            failed = true;
        }
        switch (chunk[0]) {
        case '[': {
            char32_t r = 0;
            if (!failed) {
                s.remove_prefix(decode(s, r));
            }
            chunk.remove_prefix(1);
            bool negated = false;
            if (!chunk.empty() && chunk[0] == '^') {
                negated = true;
                chunk.remove_prefix(1);
            }
            bool match = false;
            int nrange = 0;
            while (true) {
                if (!chunk.empty() && chunk[0] == ']' && nrange > 0) {
                    chunk.remove_prefix(1);
                    break;
                }
                char32_t lo = get_esc(chunk);
                char32_t hi = lo;
                if (chunk[0] == '-') {
                    chunk.remove_prefix(1);
                    hi = get_esc(chunk);
                }
                if (lo <= r && r <= hi) {
                    match = true;
                }
                ++nrange;
            }
            if (match == negated) {
                failed = true;
            }
            break;
        }
        case '?':
            if (!failed) {
                if (s[0] == '/') {
                    failed = true;
                }
                char32_t r;
                s.remove_prefix(decode(s, r));
            }
            chunk.remove_prefix(1);
            break;
        case '\\':
            chunk.remove_prefix(1);
            if (chunk.empty()) {
                throw BadPattern{};
            }
            [[fallthrough]];
        default:
            if (!failed) {
                if (chunk[0] != s[0]) {
                    failed = true;
                }
                s.remove_prefix(1);
            }
            chunk.remove_prefix(1);
        }
    }
    if (failed) {
        return std::nullopt;
    }
    return s;
}

void scan_chunk(std::string_view& pattern, bool& star, std::string_view& chunk) {
    star = false;
    while (!pattern.empty() && pattern[0] == '*') {
        pattern.remove_prefix(1);
        star = true;
    }
    bool inrange = false;
    std::size_t i = 0;
    for (; i < pattern.size(); ++i) {
        char c = pattern[i];
        if (c == '\\') {
            if (i + 1 < pattern.size()) {
                ++i;
            }
        } else if (c == '[') {
            inrange = true;
        } else if (c == ']') {
            inrange = false;
        } else if (c == '*' && !inrange) {
            break;
        }
    }
    chunk = pattern.substr(0, i);
    pattern.remove_prefix(i);
}

bool go_match(std::string_view pattern, std::string_view name) {
    while (!pattern.empty()) {
        bool star;
        std::string_view chunk;
        scan_chunk(pattern, star, chunk);
        if (star && chunk.empty()) {
            return name.find('/') == std::string_view::npos;
        }
        auto t = match_chunk(chunk, name);
        if (t && (t->empty() || !pattern.empty())) {
            name = *t;
            continue;
        }
        bool matched = false;
        if (star) {
            for (std::size_t i = 0; i < name.size() && name[i] != '/'; ++i) {
                auto t2 = match_chunk(chunk, name.substr(i + 1));
                if (t2) {
                    if (pattern.empty() && !t2->empty()) {
                        continue;
                    }
                    name = *t2;
                    matched = true;
                    break;
                }
            }
        }
        if (matched) {
            continue;
        }
        while (!pattern.empty()) {
            scan_chunk(pattern, star, chunk);
            match_chunk(chunk, "");
        }
        return false;
    }
    return name.empty();
}

} // namespace

bool path_match(const std::string& pattern, const std::string& path) {
    try {
        return go_match(pattern, path);
    } catch (const BadPattern&) {
        throw Error("syntax error in pattern \"" + pattern + "\"");
    }
}

bool has_wildcard(const std::string& s) {
    return s.find_first_of("*?[") != std::string::npos;
}

// ---------------------------------------------------------------- helpers

namespace {

std::vector<std::string> split_path(const std::string& p) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i <= p.size()) {
        std::size_t j = p.find('/', i);
        if (j == std::string::npos) {
            j = p.size();
        }
        std::string c = p.substr(i, j - i);
        if (!c.empty() && c != ".") {
            out.push_back(std::move(c));
        }
        i = j + 1;
    }
    return out;
}

std::string join_rel(const std::string& a, const std::string& b) {
    return a.empty() || a == "." ? b : a + "/" + b;
}

// The entries of the source directory sdir (at rel), sorted by name: from
// opts.listed when it knows rel, else read and lstat'ed now (into own).
const std::vector<ListedEntry>& entries_of(const CopyOptions& opts, int sdir,
                                           const std::string& rel, std::vector<ListedEntry>& own) {
    if (opts.listed) {
        if (const std::vector<ListedEntry>* listed = opts.listed(rel)) {
            return *listed;
        }
    }
    own.clear();
    for (auto& name : fs::list_dir_at(sdir)) {
        struct stat st;
        if (::fstatat(sdir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            throw_errno("stat", join_rel(rel, name));
        }
        own.push_back({std::move(name), st});
    }
    return own;
}

bool is_excluded(const CopyOptions& o, const std::string& rel, bool is_dir) {
    return o.excluded && rel != "." && o.excluded(rel, is_dir);
}

// Expands one pattern component by component below the source root.
void expand_into(int src_root, const std::vector<std::string>& comps, std::size_t i,
                 const std::string& prefix, const CopyOptions& opts,
                 std::vector<std::string>& out) {
    if (i == comps.size()) {
        out.push_back(prefix.empty() ? "." : prefix);
        return;
    }
    const std::string& comp = comps[i];
    if (comp == "..") {
        // Cleaned paths have no "..": a leading one stays at the root.
        expand_into(src_root, comps, i + 1, prefix, opts, out);
        return;
    }
    if (comp == "**" && opts.parents) {
        // COPY --parents: "**" is any number of directories, none included
        // (BuildKit's include patterns).
        expand_into(src_root, comps, i + 1, prefix, opts, out);
        UniqueFd dir;
        try {
            dir = open_in_root(src_root, prefix.empty() ? "." : prefix, O_RDONLY | O_DIRECTORY);
        } catch (const SysError&) {
            return;
        }
        for (const auto& name : fs::list_dir_at(dir.get())) {
            struct stat st;
            if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
                !S_ISDIR(st.st_mode)) {
                continue;
            }
            std::string rel = join_rel(prefix, name);
            if (is_excluded(opts, rel, true)) {
                continue;
            }
            expand_into(src_root, comps, i, rel, opts, out);
        }
        return;
    }
    if (!has_wildcard(comp)) {
        expand_into(src_root, comps, i + 1, join_rel(prefix, comp), opts, out);
        return;
    }
    UniqueFd dir;
    try {
        dir = open_in_root(src_root, prefix.empty() ? "." : prefix, O_RDONLY | O_DIRECTORY);
    } catch (const SysError&) {
        return;
    }
    for (const auto& name : fs::list_dir_at(dir.get())) {
        if (path_match(comp, name)) {
            std::string rel = join_rel(prefix, name);
            struct stat st;
            bool is_dir = ::fstatat(dir.get(), name.c_str(), &st, 0) == 0 && S_ISDIR(st.st_mode);
            if (is_excluded(opts, rel, is_dir)) {
                continue;
            }
            expand_into(src_root, comps, i + 1, rel, opts, out);
        }
    }
}

struct Copier {
    int src_root;
    int dest_root;
    const CopyOptions& opts;
    CopyStats stats;
    // (dev, ino) of a copied file with several links -> its destination path.
    std::map<std::pair<dev_t, ino_t>, std::string> links;
    bool no_copy_file_range = false; // it said EXDEV once: source and destination differ
    // Whether the destination directory being filled was made by this copy
    // (mkdir succeeded): it was empty, so its regular files need no
    // clear_target (a look-up through every layer of the overlay each).
    bool parent_fresh = false;

    uid_t owner_uid(const struct stat& st) const {
        return opts.uid ? *opts.uid : opts.preserve_owner ? st.st_uid : 0;
    }
    gid_t owner_gid(const struct stat& st) const {
        return opts.gid ? *opts.gid : opts.preserve_owner ? st.st_gid : 0;
    }
    mode_t mode_of(const struct stat& st) const {
        return opts.chmod ? opts.chmod->apply(st.st_mode, S_ISDIR(st.st_mode))
                          : (st.st_mode & 07777);
    }

    void set_meta(int dirfd, const std::string& name, const struct stat& st, bool is_link) {
        int flags = is_link ? AT_SYMLINK_NOFOLLOW : 0;
        if (::fchownat(dirfd, name.c_str(), owner_uid(st), owner_gid(st), flags) != 0 &&
            errno != EPERM) {
            throw_errno("chown", name);
        }
        if (!is_link && ::fchmodat(dirfd, name.c_str(), mode_of(st), 0) != 0) {
            throw_errno("chmod", name);
        }
        struct timespec ts[2] = {st.st_mtim, st.st_mtim};
        ::utimensat(dirfd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW);
    }

    void copy_xattrs(int src_fd, int dst_fd) {
        char names[65536];
        ssize_t n = ::flistxattr(src_fd, names, sizeof names);
        for (ssize_t i = 0; i < n;) {
            std::string name(names + i);
            i += static_cast<ssize_t>(name.size()) + 1;
            if (!copy_keeps_xattr(name)) {
                continue;
            }
            char value[65536];
            ssize_t v = ::fgetxattr(src_fd, name.c_str(), value, sizeof value);
            if (v >= 0 &&
                ::fsetxattr(dst_fd, name.c_str(), value, static_cast<size_t>(v), 0) != 0) {
                STRATA_LOG_DEBUG("copy: cannot set xattr {}: {}", name, std::strerror(errno));
            }
        }
    }

    // copy_file's deferral (opts.defer_content) of sdir/sname without opening
    // it (a COPY that reuses the previous build's files asks this of every
    // file; the callback looks at extended attributes only when it must).
    // false when the file is not deferred: copy_file copies it.
    bool defer_unopened(int sdir, const std::string& sname, const struct stat& st,
                        const std::string& rel, int ddir, const std::string& dname,
                        const std::string& shown) {
        if (st.st_nlink != 1 || st.st_size <= 0 || !opts.defer_content) {
            return false;
        }
        if (!parent_fresh) {
            clear_target(ddir, dname, false, shown);
        }
        if (!opts.defer_content(DeferredFile{shown, rel, st, mode_of(st), owner_uid(st),
                                             owner_gid(st), sdir, sname.c_str()})) {
            return false;
        }
        stats.files++;
        stats.bytes += static_cast<std::uint64_t>(st.st_size);
        return true;
    }

    // Removes whatever is at dirfd/name unless it is a directory and keep_dir.
    void clear_target(int dirfd, const std::string& name, bool want_dir, const std::string& shown) {
        struct stat st;
        if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            return;
        }
        if (S_ISDIR(st.st_mode)) {
            if (want_dir) {
                return;
            }
            throw Error("cannot replace directory " + shown + " with a non-directory");
        }
        if (::unlinkat(dirfd, name.c_str(), 0) != 0) {
            throw_errno("unlink", shown);
        }
    }

    // Copies the regular file open as `in` (described by st) to ddir/dname.
    void copy_file(int in, const struct stat& st, int ddir, const std::string& dname,
                   const std::string& shown, const std::string& src_rel) {
        if (!parent_fresh) {
            clear_target(ddir, dname, false, shown);
        }
        if (st.st_nlink > 1) {
            auto it = links.find({st.st_dev, st.st_ino});
            if (it != links.end()) {
                auto target = open_parent_in_root(dest_root, it->second);
                if (::linkat(target.dir.get(), target.name.c_str(), ddir, dname.c_str(), 0) == 0) {
                    return;
                }
            }
        }
        if (st.st_nlink == 1 && st.st_size > 0 && opts.defer_content &&
            opts.defer_content(DeferredFile{shown, src_rel, st, mode_of(st), owner_uid(st),
                                            owner_gid(st), in, nullptr})) {
            stats.files++;
            stats.bytes += static_cast<std::uint64_t>(st.st_size);
            return;
        }
        UniqueFd out = fs::open_at(ddir, dname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
        off_t remaining = st.st_size;
        if (remaining > 0 && no_copy_file_range) {
            copy_by_sendfile(in, out.get(), remaining, shown);
            remaining = 0;
        }
        while (remaining > 0) {
            ssize_t n = ::copy_file_range(in, nullptr, out.get(), nullptr,
                                          static_cast<size_t>(remaining), 0);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
                    // Across filesystems (the context into the step's
                    // overlay): an in-kernel copy, no user-space buffer.
                    no_copy_file_range = errno == EXDEV;
                    copy_by_sendfile(in, out.get(), remaining, shown);
                    break;
                }
                throw_errno("copy", shown);
            }
            if (n == 0) {
                break;
            }
            remaining -= n;
        }
        // Owner, mode and times through the open file: no path lookups.
        if (::fchown(out.get(), owner_uid(st), owner_gid(st)) != 0 && errno != EPERM) {
            throw_errno("chown", shown);
        }
        if (::fchmod(out.get(), mode_of(st)) != 0) {
            throw_errno("chmod", shown);
        }
        // After the chown, which drops security.capability (BuildKit's
        // order too: owner and mode, then the xattrs).
        copy_xattrs(in, out.get());
        struct timespec ts[2] = {st.st_mtim, st.st_mtim};
        ::futimens(out.get(), ts);
        out.close();
        stats.files++;
        stats.bytes += static_cast<std::uint64_t>(st.st_size);
        if (st.st_nlink > 1) {
            links[{st.st_dev, st.st_ino}] = shown;
        }
    }

    // sendfile(2) from the current offset of `in` until `remaining` bytes or
    // end of file; read/write when the kernel cannot.
    static void copy_by_sendfile(int in, int out, off_t remaining, const std::string& shown) {
        while (remaining > 0) {
            ssize_t n = ::sendfile(out, in, nullptr,
                                   static_cast<size_t>(std::min<off_t>(remaining, 1 << 30)));
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
                    copy_by_read(in, out, shown);
                    return;
                }
                throw_errno("copy", shown);
            }
            if (n == 0) {
                return;
            }
            remaining -= n;
        }
    }

    static void copy_by_read(int in, int out, const std::string& shown) {
        std::unique_ptr<char[]> buf(
            new char[1 << 20]); // not zeroed: only what read() filled is used
        while (true) {
            ssize_t n = ::read(in, buf.get(), 1 << 20);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                throw_errno("read", shown);
            }
            if (n == 0) {
                return;
            }
            fs::write_all(out, buf.get(), static_cast<std::size_t>(n));
        }
    }

    // Copies the entry sdir/sname (already lstat'ed as st) to ddir/dname.
    void copy_entry(int sdir, const std::string& sname, const struct stat& st,
                    const std::string& rel, int ddir, const std::string& dname,
                    const std::string& shown) {
        if (S_ISDIR(st.st_mode)) {
            clear_target(ddir, dname, true, shown);
            bool fresh = ::mkdirat(ddir, dname.c_str(), 0700) == 0;
            if (!fresh && errno != EEXIST) {
                throw_errno("mkdir", shown);
            }
            UniqueFd ssub = fs::open_at(sdir, sname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
            UniqueFd dsub = fs::open_at(ddir, dname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
            bool outer_fresh = std::exchange(parent_fresh, fresh);
            copy_children(ssub.get(), rel, dsub.get(), shown);
            parent_fresh = outer_fresh;
            copy_xattrs(ssub.get(), dsub.get());
            set_meta(ddir, dname, st, false);
        } else if (S_ISREG(st.st_mode)) {
            if (defer_unopened(sdir, sname, st, rel, ddir, dname, shown)) {
                return;
            }
            UniqueFd in = fs::open_at(sdir, sname, O_RDONLY | O_NOFOLLOW);
            copy_file(in.get(), st, ddir, dname, shown, rel);
        } else if (S_ISLNK(st.st_mode)) {
            clear_target(ddir, dname, false, shown);
            std::vector<char> buf(static_cast<std::size_t>(st.st_size) + 1 > 4096
                                      ? static_cast<std::size_t>(st.st_size) + 1
                                      : 4096);
            ssize_t n = ::readlinkat(sdir, sname.c_str(), buf.data(), buf.size());
            if (n < 0) {
                throw_errno("readlink", rel);
            }
            std::string target(buf.data(), static_cast<std::size_t>(n));
            if (::symlinkat(target.c_str(), ddir, dname.c_str()) != 0) {
                throw_errno("symlink", shown);
            }
            set_meta(ddir, dname, st, true);
            stats.files++;
        } else if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
            clear_target(ddir, dname, false, shown);
            if (::mknodat(ddir, dname.c_str(), st.st_mode, st.st_rdev) != 0) {
                throw_errno("mknod", shown);
            }
            set_meta(ddir, dname, st, false);
            stats.files++;
        }
        // Sockets are skipped, as Docker does.
    }

    void copy_children(int sdir, const std::string& rel, int ddir, const std::string& shown) {
        std::vector<ListedEntry> own;
        for (const auto& [name, st] : entries_of(opts, sdir, rel, own)) {
            std::string child_rel = join_rel(rel, name);
            bool is_dir = S_ISDIR(st.st_mode);
            if (is_excluded(opts, child_rel, is_dir)) {
                if (!(is_dir && opts.may_reinclude && opts.may_reinclude(child_rel))) {
                    continue;
                }
                // An excluded directory that holds re-included entries: create
                // it and copy only what is not excluded.
            }
            copy_entry(sdir, name, st, child_rel, ddir, name, shown + "/" + name);
        }
    }
};

// Ensures the destination directory exists (created dirs get the owner the
// copy uses) and returns an fd to it.
UniqueFd ensure_dest_dir(int dest_root, const std::string& path, const CopyOptions& opts) {
    std::string cleaned = clean_path("/" + path);
    UniqueFd cur = open_in_root(dest_root, "/", O_RDONLY | O_DIRECTORY);
    std::string prefix;
    for (const auto& comp : split_path(cleaned)) {
        prefix += "/" + comp;
        try {
            cur = open_in_root(dest_root, prefix, O_RDONLY | O_DIRECTORY);
            continue;
        } catch (const SysError& e) {
            if (e.error_code() == ENOTDIR) {
                throw Error("cannot copy to " + prefix + ": it exists and is not a directory");
            }
            if (e.error_code() != ENOENT) {
                throw;
            }
        }
        mkdirs_in_root(dest_root, prefix, 0755);
        cur = open_in_root(dest_root, prefix, O_RDONLY | O_DIRECTORY);
        uid_t uid = opts.uid ? *opts.uid : 0;
        gid_t gid = opts.gid ? *opts.gid : 0;
        if (::fchown(cur.get(), uid, gid) != 0 && errno != EPERM) {
            throw_errno("chown", prefix);
        }
    }
    return cur;
}

} // namespace

namespace {

// A matched source: its path in the source root, and with --parents the
// part of it kept under the destination (after a "/./" pivot, or all of it).
struct Match {
    std::string rel;
    std::string kept;
};

std::vector<Match> expand_matches(int src_root, const std::vector<std::string>& sources,
                                  const CopyOptions& opts) {
    std::vector<Match> out;
    for (const auto& src : sources) {
        // --parents: "./x/./y/*.txt" keeps the paths from the "./" pivot on
        // (y/a.txt), as rsync --relative; BuildKit cuts at the first "/./".
        std::size_t pivot_len = 0;
        if (opts.parents) {
            if (auto cut = src.find("/./"); cut != std::string::npos) {
                std::string parent = clean_path("/" + src.substr(0, cut));
                pivot_len = parent == "/" ? 0 : parent.size(); // "/x" -> strip "x/"
            }
        }
        std::string cleaned = clean_path("/" + src);
        std::vector<std::string> found;
        expand_into(src_root, split_path(cleaned), 0, "", opts, found);
        if (opts.parents && has_wildcard(cleaned)) {
            // "**" can reach a path along several routes.
            std::sort(found.begin(), found.end());
            found.erase(std::unique(found.begin(), found.end()), found.end());
        }
        if (!has_wildcard(cleaned)) {
            // A plain path must exist (following a final symlink inside the root).
            const std::string& rel = found.front();
            struct stat st;
            bool exists;
            try {
                UniqueFd fd = open_in_root(src_root, rel, O_PATH);
                exists = ::fstat(fd.get(), &st) == 0;
            } catch (const SysError&) {
                exists = false;
            }
            if (!exists || is_excluded(opts, rel, exists && S_ISDIR(st.st_mode))) {
                throw Error("\"" + cleaned + "\": not found");
            }
        } else if (found.empty()) {
            throw Error("no source files were specified: \"" + src + "\" matches nothing");
        }
        for (auto& rel : found) {
            std::string kept = rel;
            if (pivot_len > 0) {
                // rel is "x/y/a.txt" for the pivot "/x": keep "y/a.txt".
                kept = rel.size() > pivot_len ? rel.substr(pivot_len) : std::string(".");
            }
            out.push_back(Match{std::move(rel), std::move(kept)});
        }
    }
    return out;
}

} // namespace

std::vector<std::string> expand_sources(int src_root, const std::vector<std::string>& sources,
                                        const CopyOptions& opts) {
    std::vector<std::string> out;
    for (auto& m : expand_matches(src_root, sources, opts)) {
        out.push_back(std::move(m.rel));
    }
    return out;
}

CopyStats copy_into(int src_root, const std::vector<std::string>& sources, int dest_root,
                    const std::string& dest, const CopyOptions& opts) {
    std::vector<Match> matches = expand_matches(src_root, sources, opts);
    std::vector<std::string> matched;
    for (const auto& m : matches) {
        matched.push_back(m.rel);
    }
    bool dest_is_dir_syntax =
        !dest.empty() && (dest.back() == '/' || dest.ends_with("/.") || dest == ".");
    bool multiple =
        matched.size() > 1 || std::any_of(sources.begin(), sources.end(),
                                          [](const std::string& s) { return has_wildcard(s); });
    std::string dest_clean = clean_path("/" + dest);
    bool dest_exists_dir = false;
    try {
        UniqueFd d = open_in_root(dest_root, dest_clean, O_RDONLY | O_DIRECTORY);
        dest_exists_dir = true;
    } catch (const SysError&) {
    }
    if (matched.size() > 1 && !dest_is_dir_syntax && !dest_exists_dir) {
        throw Error("when using COPY with more than one source file, the destination must be a "
                    "directory and end with a /");
    }
    Copier c{src_root, dest_root, opts, {}, {}};
    for (const auto& m : matches) {
        const std::string& rel = m.rel;
        // The top-level source is followed if it is a symlink (inside the root).
        UniqueFd src = open_in_root(src_root, rel, O_PATH);
        struct stat st;
        if (::fstat(src.get(), &st) != 0) {
            throw_errno("stat", rel);
        }
        std::string sub = opts.parents && m.kept != "." ? m.kept : "";
        if (S_ISDIR(st.st_mode)) {
            // The directory's contents go into dest (or dest/<rel> with --parents).
            std::string target = sub.empty() ? dest_clean : clean_path(dest_clean + "/" + sub);
            UniqueFd ddir = ensure_dest_dir(dest_root, target, opts);
            UniqueFd sdir = open_in_root(src_root, rel, O_RDONLY | O_DIRECTORY);
            c.copy_children(sdir.get(), rel, ddir.get(), target == "/" ? "" : target);
            continue;
        }
        std::string target;
        if (dest_is_dir_syntax || dest_exists_dir || multiple) {
            std::string base = sub.empty() ? fs::basename(rel) : sub;
            target = clean_path(dest_clean + "/" + base);
        } else {
            target = dest_clean;
        }
        UniqueFd ddir = ensure_dest_dir(dest_root, fs::dirname(target), opts);
        std::string name = fs::basename(target);
        if (S_ISREG(st.st_mode)) {
            UniqueFd in = open_in_root(src_root, rel, O_RDONLY);
            c.copy_file(in.get(), st, ddir.get(), name, target, rel);
        } else {
            // A FIFO or device node (a top-level symlink was followed above).
            auto parent = open_parent_in_root(src_root, rel);
            c.copy_entry(parent.dir.get(), parent.name, st, rel, ddir.get(), name, target);
        }
    }
    return c.stats;
}

bool copy_keeps_xattr(std::string_view name) {
    return !(name.starts_with("trusted.") || name.starts_with("security.selinux") ||
             name.find("overlay.") != std::string_view::npos);
}

bool has_kept_xattrs(const DeferredFile& f) {
    return has_kept_xattrs(f.src_dir, f.src_name);
}

bool has_kept_xattrs(int dirfd, const char* name) {
    char names[65536];
    ssize_t n;
    if (name == nullptr) {
        n = ::flistxattr(dirfd, names, sizeof names);
    } else {
        // Through /proc/self/fd: no open and close of the file.
        std::string path = "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
        n = ::llistxattr(path.c_str(), names, sizeof names);
    }
    if (n < 0) {
        return errno != ENOTSUP;
    }
    for (ssize_t i = 0; i < n;) {
        std::string_view name(names + i);
        i += static_cast<ssize_t>(name.size()) + 1;
        if (copy_keeps_xattr(name)) {
            return true;
        }
    }
    return false;
}

namespace {

// The extended attributes a copy keeps of fd (copy_keeps_xattr), in name
// order, as bytes for a hash ("" when none): a change to one is a change of
// the step's sources, as BuildKit's content hash has them.
std::string kept_xattrs_of(int fd, const std::string& shown) {
    std::string out;
    for (const auto& [name, value] : fs::read_xattrs(fd, shown)) {
        if (copy_keeps_xattr(name)) {
            out += "xattr " + name + '\0' + std::to_string(value.size()) + '\0' + value;
        }
    }
    return out;
}

void hash_fd(Sha256& h, int fd, const std::string& shown) {
    std::vector<char> buf(1 << 16);
    while (true) {
        ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw_errno("read", shown);
        }
        if (n == 0) {
            return;
        }
        h.update(buf.data(), static_cast<std::size_t>(n));
    }
}
} // namespace

std::string hash_sources(int src_root, const std::vector<std::string>& sources,
                         const CopyOptions& opts, FileDigestMemo* memo,
                         std::map<std::string, std::string>* listing) {
    std::vector<std::string> matched = expand_sources(src_root, sources, opts);
    Sha256 h;
    auto list = [&](const std::string& rel, const struct stat& st, const std::string& what) {
        if (listing != nullptr) {
            (*listing)[rel] = fmt::format("{:o} {}", st.st_mode, what);
        }
    };
    // A regular file's content, or with a memo its digest.
    auto hash_file = [&](const std::function<UniqueFd()>& open, const std::string& rel,
                         const struct stat& st) {
        if (memo == nullptr) {
            // (Listed only with a memo: the hash input must not change.)
            UniqueFd f = open();
            hash_fd(h, f.get(), rel);
            h.update(kept_xattrs_of(f.get(), rel));
            return;
        }
        // The memo's digest is the content's, or for a file with extended
        // attributes a copy keeps, of the content's digest and those (an
        // xattr change moves the ctime, so the memo reads the file again).
        std::optional<std::string> digest = memo->find(rel, st);
        if (!digest) {
            UniqueFd f = open();
            struct stat opened = fs::fstat(f.get());
            Sha256 fh;
            hash_fd(fh, f.get(), rel);
            digest = fh.finish_hex();
            if (std::string x = kept_xattrs_of(f.get(), rel); !x.empty()) {
                digest = Sha256::hex_of(*digest + '\0' + x);
            }
            // Remembered only under the lstat it was found with, and only
            // when the file read is still that one.
            if (opened.st_ino == st.st_ino && opened.st_dev == st.st_dev &&
                opened.st_size == st.st_size && opened.st_mtim.tv_sec == st.st_mtim.tv_sec &&
                opened.st_mtim.tv_nsec == st.st_mtim.tv_nsec &&
                opened.st_ctim.tv_sec == st.st_ctim.tv_sec &&
                opened.st_ctim.tv_nsec == st.st_ctim.tv_nsec) {
                memo->learn(rel, st, *digest);
            }
        }
        list(rel, st, *digest);
        h.update(*digest);
    };
    std::function<void(int, const std::string&)> walk = [&](int dirfd, const std::string& rel) {
        std::vector<ListedEntry> own;
        for (const auto& [name, st] : entries_of(opts, dirfd, rel, own)) {
            std::string child = join_rel(rel, name);
            bool is_dir = S_ISDIR(st.st_mode);
            if (is_excluded(opts, child, is_dir) &&
                !(is_dir && opts.may_reinclude && opts.may_reinclude(child))) {
                continue;
            }
            std::string line = child + '\0' + std::to_string(st.st_mode) + '\0';
            if (opts.preserve_owner) {
                line += std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid) + '\0';
            }
            h.update(line);
            if (S_ISREG(st.st_mode)) {
                hash_file([&] { return fs::open_at(dirfd, name, O_RDONLY | O_NOFOLLOW); }, child,
                          st);
            } else if (S_ISLNK(st.st_mode)) {
                char buf[4096];
                ssize_t n = ::readlinkat(dirfd, name.c_str(), buf, sizeof buf);
                h.update(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
                list(child, st, "-> " + std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0));
            } else if (is_dir) {
                list(child, st, "dir");
                UniqueFd sub = fs::open_at(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
                h.update(kept_xattrs_of(sub.get(), child));
                walk(sub.get(), child);
            }
        }
    };
    for (const auto& rel : matched) {
        h.update(std::string("source") + '\0' + rel + '\0');
        UniqueFd path = open_in_root(src_root, rel, O_PATH);
        struct stat st = fs::fstat(path.get());
        h.update(std::to_string(st.st_mode) + '\0');
        if (S_ISDIR(st.st_mode)) {
            UniqueFd dir = open_in_root(src_root, rel, O_RDONLY | O_DIRECTORY);
            h.update(kept_xattrs_of(dir.get(), rel));
            walk(dir.get(), rel);
        } else if (S_ISREG(st.st_mode)) {
            hash_file([&] { return open_in_root(src_root, rel, O_RDONLY); }, rel, st);
        } else {
            list(rel, st, "");
        }
    }
    return h.finish_hex();
}

} // namespace strata::builder
