#include "builder/copy_reuse.hpp"

#include "builder/copy.hpp"
#include "formats/zstd_chunked.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <functional>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <thread>
#include <unistd.h>

namespace strata::builder {

namespace {

bool same_time(const struct timespec& a, const struct timespec& b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// Copies the whole content of `in` into `out` (both regular files).
void copy_content(int in, int out, off_t size, const std::string& src, const std::string& dst) {
    off_t left = size;
    while (left > 0) {
        ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, static_cast<size_t>(left), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            // Any failure of the in-kernel copy: plain reads and writes.
            std::vector<char> buf(1 << 20);
            off_t done = size - left;
            while (left > 0) {
                ssize_t r = ::pread(in, buf.data(),
                                    static_cast<size_t>(std::min<off_t>(left, 1 << 20)), done);
                if (r < 0 && errno == EINTR) {
                    continue;
                }
                if (r <= 0) {
                    throw_errno("read", src);
                }
                if (::pwrite(out, buf.data(), static_cast<size_t>(r), done) != r) {
                    throw_errno("write", dst);
                }
                done += r;
                left -= r;
            }
            break;
        }
        left -= n;
    }
}

// Opens the directory rel ("a/b"; "" for the root) under root without
// following a symlink anywhere on the way: the copy made these directories
// in the upper directory; a symlink there would lead outside it.
UniqueFd open_dir_beneath(int root, const std::string& rel, const std::string& shown) {
    UniqueFd cur = fs::open_at(root, ".", O_RDONLY | O_DIRECTORY);
    std::size_t pos = 0;
    while (pos < rel.size()) {
        std::size_t slash = rel.find('/', pos);
        std::string comp =
            rel.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
        pos = slash == std::string::npos ? rel.size() : slash + 1;
        if (comp.empty() || comp == "." || comp == "..") {
            throw Error("COPY: bad path " + shown + "/" + rel);
        }
        cur = fs::open_at(cur.get(), comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    }
    return cur;
}

bool is_whiteout(const struct stat& st) {
    return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

} // namespace

std::optional<CopyReuse> CopyReuse::open(const snapshot::Store& store,
                                         const std::string& previous_fs,
                                         const formats::Descriptor& previous_layer,
                                         FileDigestMemo* memo, bool check_in_pack) {
    if (memo == nullptr) {
        return std::nullopt;
    }
    auto ann =
        previous_layer.annotations.find(std::string(formats::k_chunked_manifest_checksum_key));
    bool chunked = ann != previous_layer.annotations.end() && store.has_blob(previous_layer.digest);
    if (!chunked && !check_in_pack) {
        return std::nullopt;
    }
    CopyReuse r;
    try {
        r.m_prev = fs::open(previous_fs, O_PATH | O_DIRECTORY);
        if (chunked) {
            UniqueFd blob = store.open_blob(previous_layer.digest);
            auto toc = formats::read_chunked_toc(blob.get(),
                                                 static_cast<std::uint64_t>(previous_layer.size),
                                                 previous_layer.digest.str(), ann->second);
            if (!toc) {
                return std::nullopt;
            }
            r.m_old.reserve(toc->entries.size());
            for (const auto& e : toc->entries) {
                if (e.type == "reg" && e.size > 0 && e.digest.size() == 71) {
                    r.m_old[e.name] = &e;
                }
            }
            r.m_toc_entries = std::move(toc);
            r.m_toc = true;
        }
    } catch (const Error& e) {
        STRATA_LOG_WARN("COPY: not reusing files of {}: {}", previous_fs, e.what());
        return std::nullopt;
    }
    r.m_previous_fs = previous_fs;
    r.m_memo = memo;
    return r;
}

bool CopyReuse::defer(const DeferredFile& f) {
    std::string name = f.dest;
    while (!name.empty() && name.front() == '/') {
        name.erase(0, 1);
    }
    const formats::ChunkedEntry* old_entry = nullptr;
    if (m_toc) {
        auto it = m_old.find(name);
        if (it == m_old.end() || !it->second->xattrs.empty() ||
            it->second->size != static_cast<std::uint64_t>(f.st.st_size)) {
            return false;
        }
        old_entry = it->second;
    }
    // The digest this build computed for the source (the cache key's), for
    // its current lstat: never a stale one. For a file with extended
    // attributes a copy keeps, the memo's digest covers them too, so it is
    // never a TOC's content digest: with a TOC, such a file is not deferred
    // without listing them here.
    std::optional<std::string> digest = m_memo->find(f.src_rel, f.st);
    if (!digest ||
        (old_entry != nullptr && *digest != std::string_view(old_entry->digest).substr(7)) ||
        (!m_toc && has_kept_xattrs(f))) {
        return false;
    }
    // The previous snapshot's file must be what the copy would make now:
    // a link takes its inode's metadata as it is. (Looked up from its
    // directory, open while the copy goes through it.)
    auto slash = name.rfind('/');
    std::string parent = slash == std::string::npos ? std::string() : name.substr(0, slash);
    if (!m_prev_dir || parent != m_prev_dir_name) {
        m_prev_dir.reset();
        m_prev_dir_name = parent;
        try {
            m_prev_dir = open_dir_beneath(m_prev.get(), parent, m_previous_fs);
        } catch (const Error&) {
            return false; // not there (or not a directory): copied
        }
    }
    const char* base = slash == std::string::npos ? name.c_str() : name.c_str() + slash + 1;
    struct stat old {};
    if (::fstatat(m_prev_dir.get(), base, &old, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(old.st_mode) || old.st_size != f.st.st_size ||
        !same_time(old.st_mtim, f.st.st_mtim) || (old.st_mode & 07777) != (f.mode & 07777) ||
        old.st_uid != f.uid || old.st_gid != f.gid) {
        return false;
    }
    // No TOC to say which extended attributes the layer gives it: none that
    // a copy would make (host labels and overlayfs' own are not).
    if (!m_toc && has_kept_xattrs(m_prev_dir.get(), base)) {
        return false;
    }
    // One inode per path: two new paths sharing one would become a tar hard
    // link, which a full copy does not make.
    if (!m_inodes.insert({old.st_dev, old.st_ino}).second) {
        return false;
    }
    m_deferred.push_back(Deferred{std::move(name), f, std::move(*digest), old.st_dev, old.st_ino});
    return true;
}

std::size_t CopyReuse::finish(const std::string& upper, snapshot::ContentChecks& checks,
                              snapshot::LinkedFiles& linked_files) {
    UniqueFd root = fs::open(upper, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    auto parent_of = [](const std::string& name) {
        auto slash = name.rfind('/');
        return slash == std::string::npos ? std::string() : name.substr(0, slash);
    };
    // The directories linked into, with the times the copy gave them, taken
    // before any link changes them.
    std::map<std::string, std::pair<struct timespec, struct timespec>> dir_times;
    for (const auto& d : m_deferred) {
        std::string parent = parent_of(d.name);
        if (dir_times.find(parent) == dir_times.end()) {
            // The copy created every directory on the way (or copied it up).
            UniqueFd dfd = open_dir_beneath(root.get(), parent, upper);
            struct stat ds = fs::fstat(dfd.get());
            dir_times.emplace(parent, std::make_pair(ds.st_atim, ds.st_mtim));
        }
    }
    // The links, on a few threads, each over its own run of directories
    // (links into different directories do not wait on each other; 20,000
    // links took 0.16 s on one thread here).
    struct Part {
        std::size_t begin = 0, end = 0;
        std::size_t linked = 0;
        std::vector<std::pair<std::string, std::string>> checks;
        std::vector<std::pair<std::string, std::pair<dev_t, ino_t>>> linked_files;
        std::exception_ptr error;
    };
    const std::size_t n = m_deferred.size();
    std::size_t threads = std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, 4);
    threads = std::min(threads, std::max<std::size_t>(1, n / 2000));
    std::vector<Part> parts(threads);
    std::size_t at = 0;
    for (std::size_t t = 0; t < threads; ++t) {
        parts[t].begin = at;
        std::size_t end = t + 1 == threads ? n : std::max(at, n * (t + 1) / threads);
        // A directory's run stays in one part.
        while (end < n && end > 0 &&
               parent_of(m_deferred[end].name) == parent_of(m_deferred[end - 1].name)) {
            ++end;
        }
        parts[t].end = end;
        at = end;
    }
    auto run = [&](Part& part) {
        try {
            std::string cur_dir;
            UniqueFd dir;
            for (std::size_t i = part.begin; i < part.end; ++i) {
                const Deferred& d = m_deferred[i];
                std::string parent = parent_of(d.name);
                if (!dir || parent != cur_dir) {
                    dir = open_dir_beneath(root.get(), parent, upper);
                    cur_dir = parent;
                }
                if (link_one(d, dir.get(), upper, part.checks)) {
                    ++part.linked;
                    if (m_toc) {
                        part.linked_files.emplace_back(d.name, std::make_pair(d.dev, d.ino));
                    }
                }
            }
        } catch (...) {
            part.error = std::current_exception();
        }
    };
    std::vector<std::thread> workers;
    for (std::size_t t = 1; t < threads; ++t) {
        workers.emplace_back(run, std::ref(parts[t]));
    }
    run(parts[0]);
    for (auto& w : workers) {
        w.join();
    }
    std::size_t linked = 0;
    for (auto& part : parts) {
        if (part.error) {
            std::rethrow_exception(part.error);
        }
        linked += part.linked;
        for (auto& [name, digest] : part.checks) {
            checks.emplace(std::move(name), std::move(digest));
        }
        for (auto& [name, inode] : part.linked_files) {
            linked_files.emplace(std::move(name), inode);
        }
    }
    // Links changed the directories' mtimes: back to the copy's.
    for (const auto& [rel, times] : dir_times) {
        UniqueFd dfd = open_dir_beneath(root.get(), rel, upper);
        struct timespec ts[2] = {times.first, times.second};
        if (::futimens(dfd.get(), ts) != 0) {
            throw_errno("utimens", upper + "/" + rel);
        }
    }
    m_deferred.clear();
    return linked;
}

bool CopyReuse::link_one(const Deferred& d, int dir, const std::string& upper,
                         std::vector<std::pair<std::string, std::string>>& checks) const {
    auto slash = d.name.rfind('/');
    std::string base = slash == std::string::npos ? d.name : d.name.substr(slash + 1);
    std::string shown = upper + "/" + d.name;
    if (!m_toc) {
        // Linked or copied, the content is the previous snapshot's.
        checks.emplace_back(d.name, "sha256:" + d.digest);
    }
    // Most names are free: linked at once (a link never replaces).
    // Taken: the copy removed what the lower layers had there (a
    // whiteout in the upper directory), never anything else, and the
    // link replaces that whiteout.
    if (::linkat(m_prev.get(), d.name.c_str(), dir, base.c_str(), 0) == 0) {
        return true;
    }
    int link_err = errno;
    bool replace = false;
    if (link_err == EEXIST) {
        struct stat there {};
        if (::fstatat(dir, base.c_str(), &there, AT_SYMLINK_NOFOLLOW) != 0) {
            throw_errno("stat", shown);
        }
        if (!is_whiteout(there)) {
            throw Error("COPY: " + shown + " exists where a linked file was to go");
        }
        replace = true;
    }
    std::string tmp = ".strata-link-" + base;
    const std::string& at = replace ? tmp : base;
    if (replace && ::linkat(m_prev.get(), d.name.c_str(), dir, at.c_str(), 0) == 0) {
        if (::renameat(dir, tmp.c_str(), dir, base.c_str()) != 0) {
            int err = errno;
            ::unlinkat(dir, tmp.c_str(), 0);
            throw SysError("rename", shown, err);
        }
        return true;
    }
    if (replace) {
        link_err = errno;
    }
    STRATA_LOG_DEBUG("COPY: cannot link {}/{}: {}", m_previous_fs, d.name,
                     std::strerror(link_err));
    // No link (another filesystem, a refusal): the copy's own file.
    UniqueFd in = fs::open_at(m_prev.get(), d.name, O_RDONLY | O_NOFOLLOW);
    UniqueFd out = fs::open_at(dir, at, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    copy_content(in.get(), out.get(), d.file.st.st_size, m_previous_fs + "/" + d.name, shown);
    if (::fchown(out.get(), d.file.uid, d.file.gid) != 0 && errno != EPERM) {
        throw_errno("chown", shown);
    }
    if (::fchmod(out.get(), d.file.mode & 07777) != 0) {
        throw_errno("chmod", shown);
    }
    struct timespec ts[2] = {d.file.st.st_mtim, d.file.st.st_mtim};
    if (::futimens(out.get(), ts) != 0) {
        throw_errno("utimens", shown);
    }
    out.close();
    if (replace && ::renameat(dir, tmp.c_str(), dir, base.c_str()) != 0) {
        int err = errno;
        ::unlinkat(dir, tmp.c_str(), 0);
        throw SysError("rename", shown, err);
    }
    return false;
}

} // namespace strata::builder
