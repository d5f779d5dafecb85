#include "snapshot/tree_diff.hpp"

#include "formats/layer_xattrs.hpp"
#include "formats/whiteout.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"

#include <algorithm>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <set>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace strata::snapshot {

using formats::EntryType;

std::string_view type_name(EntryType t) {
    switch (t) {
    case EntryType::file:
        return "file";
    case EntryType::dir:
        return "directory";
    case EntryType::symlink:
        return "symlink";
    case EntryType::hardlink:
        return "hardlink";
    case EntryType::chardev:
        return "char device";
    case EntryType::blockdev:
        return "block device";
    case EntryType::fifo:
        return "fifo";
    }
    return "?";
}

namespace {

FileMeta meta_of_record(const LayerIndex& idx, const Record& rec) {
    FileMeta m;
    m.type = rec.type;
    m.mode = rec.mode;
    m.uid = rec.uid;
    m.gid = rec.gid;
    m.mtime_sec = rec.mtime_sec;
    m.mtime_nsec = rec.mtime_nsec;
    m.size = rec.size;
    if (rec.type == EntryType::symlink) {
        m.link = idx.string(rec.link);
    }
    m.devmajor = rec.devmajor;
    m.devminor = rec.devminor;
    if (rec.xattrs) {
        m.xattrs = idx.xattrs(rec.xattrs);
    }
    m.layer = rec.layer;
    return m;
}

bool sorted_by_path(const TreeListing& l) {
    return std::is_sorted(l.entries.begin(), l.entries.end(),
                          [](const auto& a, const auto& b) { return a.first < b.first; });
}

void sort_listing(TreeListing& l) {
    if (!sorted_by_path(l)) {
        std::sort(l.entries.begin(), l.entries.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
    }
}

} // namespace

TreeListing listing_of(const MergedTree& tree) {
    const auto& idx = tree.index();
    const auto& trie = idx.trie();
    TreeListing out;
    tree.walk(PathTrie::k_root, [&](std::uint32_t n) {
        if (n == PathTrie::k_root) {
            return;
        }
        FileMeta m;
        auto rec = tree.record_of(n);
        if (!rec) {
            m.type = EntryType::dir; // implied by a deeper entry
            m.mode = 0755;
        } else if (idx.record(*rec).type == EntryType::hardlink) {
            auto data = tree.data_record(n);
            m = meta_of_record(idx, idx.record(data ? *data : *rec));
            m.type = EntryType::file;
            if (!data) {
                m.size = 0;
            }
            m.layer = idx.record(*rec).layer;
        } else {
            m = meta_of_record(idx, idx.record(*rec));
        }
        if (m.type == EntryType::file && idx.hashes_content()) {
            auto data = tree.data_record(n);
            m.content = data ? idx.content_hash(*data) : Sha256::Bytes{};
        }
        out.entries.emplace_back(trie.path(n), std::move(m));
    });
    sort_listing(out);
    return out;
}

TreeListing listing_of_layer(const LayerIndex& idx, std::size_t layer) {
    const auto& meta = idx.layer(layer);
    const auto& trie = idx.trie();
    TreeListing out;
    std::map<std::string, std::size_t> pos;
    for (auto r = meta.first; r < meta.end; ++r) {
        const auto& rec = idx.record(r);
        std::string path;
        FileMeta m;
        switch (rec.kind) {
        case RecordKind::entry:
            path = trie.path(rec.node);
            m = meta_of_record(idx, rec);
            if (rec.type == EntryType::hardlink) {
                m.link = idx.string(rec.link);
            }
            if (rec.type == EntryType::file && idx.hashes_content()) {
                m.content = idx.content_hash(r);
            }
            break;
        case RecordKind::whiteout: {
            auto parent = trie.path(trie.parent(rec.node));
            path = (parent.empty() ? "" : parent + "/") +
                   formats::whiteout::oci_name(trie.name(rec.node));
            m = meta_of_record(idx, rec);
            break;
        }
        case RecordKind::opaque: {
            auto dir = trie.path(rec.node);
            path = (dir.empty() ? "" : dir + "/") + std::string(formats::whiteout::k_opaque_marker);
            m = meta_of_record(idx, rec);
            break;
        }
        }
        if (path.empty()) {
            continue; // the root's own entry
        }
        // A path repeated in one layer: the later entry wins, as on extraction.
        if (auto it = pos.find(path); it != pos.end()) {
            out.entries[it->second].second = std::move(m);
        } else {
            pos.emplace(path, out.entries.size());
            out.entries.emplace_back(std::move(path), std::move(m));
        }
    }
    sort_listing(out);
    return out;
}

namespace {

bool skip_xattr(std::string_view name) {
    return !formats::layer_xattrs::kept(name);
}

void walk_directory(const std::string& root, const std::string& rel, int dirfd, TreeListing& out,
                    std::vector<char>& buf) {
    UniqueFd dup(::fcntl(dirfd, F_DUPFD_CLOEXEC, 0));
    if (!dup) {
        throw_errno("dup", fs::join(root, rel));
    }
    DIR* d = ::fdopendir(dup.get());
    if (d == nullptr) {
        throw_errno("opendir", fs::join(root, rel));
    }
    (void)dup.release(); // owned by the DIR now
    std::vector<std::string> names;
    {
        struct Closer {
            DIR* d;
            ~Closer() { ::closedir(d); }
        } closer{d};
        errno = 0;
        while (auto* de = ::readdir(d)) {
            std::string_view name = de->d_name;
            if (name != "." && name != "..") {
                names.emplace_back(name);
            }
        }
        if (errno != 0) {
            throw_errno("readdir", fs::join(root, rel));
        }
    }
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
        std::string path = rel.empty() ? name : rel + "/" + name;
        std::string full = fs::join(root, path);
        struct stat st {};
        if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            throw_errno("lstat", full);
        }
        FileMeta m;
        m.mode = st.st_mode & 07777;
        m.uid = st.st_uid;
        m.gid = st.st_gid;
        m.mtime_sec = st.st_mtim.tv_sec;
        m.mtime_nsec = static_cast<std::uint32_t>(st.st_mtim.tv_nsec);
        switch (st.st_mode & S_IFMT) {
        case S_IFREG: {
            m.type = EntryType::file;
            m.size = static_cast<std::uint64_t>(st.st_size);
            auto fd = fs::open_at(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            Sha256 sha;
            for (;;) {
                auto n = ::read(fd.get(), buf.data(), buf.size());
                if (n < 0) {
                    if (errno == EINTR)
                        continue;
                    throw_errno("read", full);
                }
                if (n == 0)
                    break;
                sha.update(buf.data(), static_cast<std::size_t>(n));
            }
            m.content = sha.finish();
            break;
        }
        case S_IFDIR:
            m.type = EntryType::dir;
            break;
        case S_IFLNK: {
            m.type = EntryType::symlink;
            std::vector<char> target(static_cast<std::size_t>(st.st_size) + 2);
            auto n = ::readlinkat(dirfd, name.c_str(), target.data(), target.size());
            if (n < 0) {
                throw_errno("readlink", full);
            }
            m.link.assign(target.data(), static_cast<std::size_t>(n));
            break;
        }
        case S_IFCHR:
            m.type = EntryType::chardev;
            break;
        case S_IFBLK:
            m.type = EntryType::blockdev;
            break;
        case S_IFIFO:
            m.type = EntryType::fifo;
            break;
        default:
            continue; // sockets have no tar form
        }
        if (m.type == EntryType::chardev || m.type == EntryType::blockdev) {
            m.devmajor = major(st.st_rdev);
            m.devminor = minor(st.st_rdev);
        }
        m.xattrs = fs::read_xattrs(full);
        std::erase_if(m.xattrs, [](const auto& kv) { return skip_xattr(kv.first); });
        for (auto& [k, v] : m.xattrs) {
            v = formats::layer_xattrs::value(k, std::move(v));
        }
        bool is_dir = m.type == EntryType::dir;
        out.entries.emplace_back(path, std::move(m));
        if (is_dir) {
            auto sub = fs::open_at(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            walk_directory(root, path, sub.get(), out, buf);
        }
    }
}

} // namespace

TreeListing listing_of_directory(const std::string& dir) {
    TreeListing out;
    auto fd = fs::open_dir(dir);
    std::vector<char> buf(1 << 16);
    walk_directory(dir, "", fd.get(), out, buf);
    sort_listing(out);
    return out;
}

std::vector<FileChange> diff_listings(const TreeListing& a, const TreeListing& b,
                                      const DiffOptions& opts) {
    std::vector<FileChange> out;
    auto ia = a.entries.begin();
    auto ib = b.entries.begin();
    while (ia != a.entries.end() || ib != b.entries.end()) {
        int cmp;
        if (ia == a.entries.end()) {
            cmp = 1;
        } else if (ib == b.entries.end()) {
            cmp = -1;
        } else {
            cmp = ia->first.compare(ib->first);
        }
        if (cmp < 0) {
            out.push_back(FileChange{ia->first, ChangeType::removed, {}, ia->second, std::nullopt});
            ++ia;
            continue;
        }
        if (cmp > 0) {
            out.push_back(FileChange{ib->first, ChangeType::added, {}, std::nullopt, ib->second});
            ++ib;
            continue;
        }
        const auto& ma = ia->second;
        const auto& mb = ib->second;
        std::vector<std::string> what;
        if (ma.type != mb.type) {
            what.emplace_back("type");
        } else {
            if (ma.type == EntryType::file) {
                if (ma.size != mb.size ||
                    (ma.content && mb.content && *ma.content != *mb.content)) {
                    what.emplace_back("content");
                }
            }
            if (ma.link != mb.link) {
                what.emplace_back(ma.type == EntryType::hardlink ? "link" : "symlink");
            }
            if (ma.devmajor != mb.devmajor || ma.devminor != mb.devminor) {
                what.emplace_back("device");
            }
        }
        if (ma.mode != mb.mode)
            what.emplace_back("mode");
        if (ma.uid != mb.uid || ma.gid != mb.gid)
            what.emplace_back("owner");
        if (ma.xattrs != mb.xattrs)
            what.emplace_back("xattrs");
        if (!opts.semantic && ma.type != EntryType::symlink &&
            (ma.mtime_sec != mb.mtime_sec || ma.mtime_nsec != mb.mtime_nsec)) {
            what.emplace_back("mtime");
        }
        if (!what.empty()) {
            out.push_back(FileChange{ia->first, ChangeType::modified, std::move(what), ma, mb});
        }
        ++ia;
        ++ib;
    }
    return out;
}

namespace {

std::string json_list(const std::vector<std::string>& v) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i)
            s += ",";
        s += "\"";
        for (char c : v[i]) {
            if (c == '"' || c == '\\')
                s += '\\';
            s += c;
        }
        s += "\"";
    }
    return s + "]";
}

std::optional<std::string> opt_list(const std::optional<std::vector<std::string>>& v) {
    if (!v)
        return std::nullopt;
    return json_list(*v);
}

std::optional<std::string> non_empty(const std::string& s) {
    if (s.empty())
        return std::nullopt;
    return s;
}

std::map<std::string, std::string> env_map(const std::vector<std::string>& env) {
    std::map<std::string, std::string> m;
    for (const auto& kv : env) {
        auto eq = kv.find('=');
        if (eq == std::string::npos) {
            m[kv] = "";
        } else {
            m[kv.substr(0, eq)] = kv.substr(eq + 1);
        }
    }
    return m;
}

std::string healthcheck_text(const formats::Healthcheck& h) {
    return fmt::format("{} interval={} timeout={} start_period={} start_interval={} retries={}",
                       json_list(h.test), h.interval, h.timeout, h.start_period, h.start_interval,
                       h.retries);
}

std::string history_text(const formats::History& h) {
    std::string s = h.created_by;
    if (h.empty_layer)
        s += " (empty layer)";
    if (!h.comment.empty())
        s += " # " + h.comment;
    return s;
}

} // namespace

std::vector<ConfigChange> diff_configs(const formats::ImageConfig& a, const formats::ImageConfig& b,
                                       const DiffOptions& opts) {
    std::vector<ConfigChange> out;
    auto field = [&](std::string name, std::optional<std::string> va,
                     std::optional<std::string> vb) {
        if (va != vb) {
            out.push_back(ConfigChange{std::move(name), std::move(va), std::move(vb)});
        }
    };
    auto maps = [&](const std::string& name, const std::map<std::string, std::string>& ma,
                    const std::map<std::string, std::string>& mb) {
        std::set<std::string> keys;
        for (const auto& [k, v] : ma)
            keys.insert(k);
        for (const auto& [k, v] : mb)
            keys.insert(k);
        for (const auto& k : keys) {
            auto fa = ma.find(k);
            auto fb = mb.find(k);
            field(name + "[" + k + "]",
                  fa == ma.end() ? std::nullopt : std::optional<std::string>(fa->second),
                  fb == mb.end() ? std::nullopt : std::optional<std::string>(fb->second));
        }
    };
    auto sets = [&](const std::string& name, const std::set<std::string>& sa,
                    const std::set<std::string>& sb) {
        std::set<std::string> keys(sa);
        keys.insert(sb.begin(), sb.end());
        for (const auto& k : keys) {
            field(name + "[" + k + "]",
                  sa.count(k) ? std::optional<std::string>("present") : std::nullopt,
                  sb.count(k) ? std::optional<std::string>("present") : std::nullopt);
        }
    };
    const auto& ca = a.config;
    const auto& cb = b.config;
    field("Architecture", non_empty(a.architecture), non_empty(b.architecture));
    field("OS", non_empty(a.os), non_empty(b.os));
    field("OSVersion", non_empty(a.os_version), non_empty(b.os_version));
    field("Variant", non_empty(a.variant), non_empty(b.variant));
    field("Author", non_empty(a.author), non_empty(b.author));
    field("User", non_empty(ca.user), non_empty(cb.user));
    field("WorkingDir", non_empty(ca.working_dir), non_empty(cb.working_dir));
    maps("Env", env_map(ca.env), env_map(cb.env));
    if (env_map(ca.env) == env_map(cb.env) && ca.env != cb.env && !opts.semantic) {
        field("Env (order)", json_list(ca.env), json_list(cb.env));
    }
    field("Entrypoint", opt_list(ca.entrypoint), opt_list(cb.entrypoint));
    field("Cmd", opt_list(ca.cmd), opt_list(cb.cmd));
    field("Shell", ca.shell.empty() ? std::nullopt : std::optional(json_list(ca.shell)),
          cb.shell.empty() ? std::nullopt : std::optional(json_list(cb.shell)));
    maps("Labels", ca.labels, cb.labels);
    sets("ExposedPorts", ca.exposed_ports, cb.exposed_ports);
    sets("Volumes", ca.volumes, cb.volumes);
    field("StopSignal", non_empty(ca.stop_signal), non_empty(cb.stop_signal));
    field("OnBuild", ca.on_build.empty() ? std::nullopt : std::optional(json_list(ca.on_build)),
          cb.on_build.empty() ? std::nullopt : std::optional(json_list(cb.on_build)));
    field("Healthcheck",
          ca.healthcheck ? std::optional(healthcheck_text(*ca.healthcheck)) : std::nullopt,
          cb.healthcheck ? std::optional(healthcheck_text(*cb.healthcheck)) : std::nullopt);
    if (!opts.semantic) {
        field("ArgsEscaped", ca.args_escaped ? "true" : "false",
              cb.args_escaped ? "true" : "false");
        field("Created", non_empty(a.created), non_empty(b.created));
        auto n = std::max(a.history.size(), b.history.size());
        for (std::size_t i = 0; i < n; ++i) {
            auto ha =
                i < a.history.size() ? std::optional(history_text(a.history[i])) : std::nullopt;
            auto hb =
                i < b.history.size() ? std::optional(history_text(b.history[i])) : std::nullopt;
            field(fmt::format("History[{}]", i), ha, hb);
            if (i < a.history.size() && i < b.history.size() &&
                a.history[i].created != b.history[i].created) {
                field(fmt::format("History[{}].created", i), a.history[i].created,
                      b.history[i].created);
            }
        }
        auto m = std::max(a.diff_ids.size(), b.diff_ids.size());
        for (std::size_t i = 0; i < m; ++i) {
            field(fmt::format("RootFS.DiffIDs[{}]", i),
                  i < a.diff_ids.size() ? std::optional(a.diff_ids[i].str()) : std::nullopt,
                  i < b.diff_ids.size() ? std::optional(b.diff_ids[i].str()) : std::nullopt);
        }
    }
    return out;
}

} // namespace strata::snapshot
