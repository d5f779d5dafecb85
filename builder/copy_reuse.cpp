#include "builder/copy_reuse.hpp"

#include "builder/copy.hpp"
#include "formats/zstd_chunked.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/root.hpp"

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
                                         FileDigestMemo* memo, bool check_in_pack,
                                         int source_root) {
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
            r.m_deferred.reserve(toc->entries.size()); // most files are deferred
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
    r.m_source = UniqueFd(::fcntl(source_root, F_DUPFD_CLOEXEC, 0));
    if (!r.m_source) {
        STRATA_LOG_WARN("COPY: not reusing files of {}: dup: {}", previous_fs,
                        std::strerror(errno));
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
    // The digest this build computed for the source (the cache key's), for
    // its current lstat: never a stale one. For a file with extended
    // attributes a copy keeps, the memo's digest covers them too, so it is
    // never a TOC's content digest: with a TOC, such a file is not deferred
    // without listing them here.
    std::optional<std::string> digest = m_memo->find(f.src_rel, f.st);
    if (!digest) {
        return false;
    }
    if (m_toc) {
        auto it = m_old.find(name);
        if (it == m_old.end() || !it->second->xattrs.empty() ||
            it->second->size != static_cast<std::uint64_t>(f.st.st_size) ||
            *digest != std::string_view(it->second->digest).substr(7)) {
            return false;
        }
    } else if (has_kept_xattrs(f)) {
        return false;
    }
    // Whether the previous snapshot's file is what the copy would make now
    // is asked by finish(), on its threads: the walk of the copy is on one.
    Deferred d{std::move(name), f, std::move(*digest)};
    d.file.src_dir = -1; // valid during this call only
    d.file.src_name = nullptr;
    m_deferred.push_back(std::move(d));
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
        std::vector<std::pair<std::string, struct stat>> linked_files;
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
    Claimed claimed;
    auto run = [&](Part& part) {
        try {
            std::string cur_dir;
            UniqueFd dir;
            UniqueFd prev_dir;
            for (std::size_t i = part.begin; i < part.end; ++i) {
                const Deferred& d = m_deferred[i];
                std::string parent = parent_of(d.name);
                if (!dir || parent != cur_dir) {
                    dir = open_dir_beneath(root.get(), parent, upper);
                    cur_dir = parent;
                    prev_dir.reset();
                    try {
                        prev_dir = open_dir_beneath(m_prev.get(), parent, m_previous_fs);
                    } catch (const Error&) {
                        // Not there (or not a directory): its files are copied.
                    }
                }
                struct stat linked {};
                if (link_one(d, dir.get(), prev_dir.get(), upper, claimed, part.checks, linked)) {
                    ++part.linked;
                    if (m_toc) {
                        part.linked_files.emplace_back(d.name, linked);
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
        for (auto& [name, st] : part.linked_files) {
            linked_files.emplace(std::move(name), st);
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

bool CopyReuse::Claimed::claim(dev_t dev, ino_t ino) {
    std::lock_guard l(mu);
    return inodes.insert({dev, ino}).second;
}

bool CopyReuse::link_one(const Deferred& d, int dir, int prev_dir, const std::string& upper,
                         Claimed& claimed, std::vector<std::pair<std::string, std::string>>& checks,
                         struct stat& linked) const {
    auto slash = d.name.rfind('/');
    std::string base = slash == std::string::npos ? d.name : d.name.substr(slash + 1);
    std::string shown = upper + "/" + d.name;
    // Most names are free. Taken: the copy removed what the lower layers
    // had there (a whiteout in the upper directory), never anything else,
    // and the new file replaces that whiteout (made under a temporary name,
    // renamed over it).
    bool replace = false;
    std::string tmp = ".strata-link-" + base;
    auto taken = [&] {
        struct stat there {};
        if (::fstatat(dir, base.c_str(), &there, AT_SYMLINK_NOFOLLOW) != 0) {
            throw_errno("stat", shown);
        }
        if (!is_whiteout(there)) {
            throw Error("COPY: " + shown + " exists where a linked file was to go");
        }
        replace = true;
    };
    auto rename_over = [&] {
        if (::renameat(dir, tmp.c_str(), dir, base.c_str()) != 0) {
            int err = errno;
            ::unlinkat(dir, tmp.c_str(), 0);
            throw SysError("rename", shown, err);
        }
    };
    // The previous snapshot's file must be what the copy would make now: a
    // link takes its inode's metadata as it is. One inode per path: two new
    // paths sharing one would become a tar hard link, which a full copy
    // does not make. No TOC to say which extended attributes the layer
    // gives it: none that a copy would make (host labels and overlayfs' own
    // are not).
    struct stat old {};
    if (prev_dir >= 0 && ::fstatat(prev_dir, base.c_str(), &old, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(old.st_mode) && old.st_size == d.file.st.st_size &&
        same_time(old.st_mtim, d.file.st.st_mtim) &&
        (old.st_mode & 07777) == (d.file.mode & 07777) && old.st_uid == d.file.uid &&
        old.st_gid == d.file.gid && (m_toc || !has_kept_xattrs(prev_dir, base.c_str())) &&
        claimed.claim(old.st_dev, old.st_ino)) {
        int err = 0;
        if (::linkat(prev_dir, base.c_str(), dir, base.c_str(), 0) != 0) {
            err = errno;
            if (err == EEXIST) {
                taken();
                err = ::linkat(prev_dir, base.c_str(), dir, tmp.c_str(), 0) == 0 ? 0 : errno;
                if (err == 0) {
                    rename_over();
                }
            }
        }
        if (err == 0) {
            if (!m_toc) {
                // The content is the previous snapshot's: checked in the pack.
                checks.emplace_back(d.name, "sha256:" + d.digest);
            }
            linked = old;
            linked.st_nlink++; // as the link left it
            return true;
        }
        STRATA_LOG_DEBUG("COPY: cannot link {}/{}: {}", m_previous_fs, d.name, std::strerror(err));
    }
    // Not linked: the file is made from the source, as the copy would have
    // made it.
    UniqueFd in = open_in_root(m_source.get(), d.file.src_rel, O_RDONLY | O_NOFOLLOW);
    struct stat now = fs::fstat(in.get());
    if (!S_ISREG(now.st_mode)) {
        throw Error("COPY: " + d.file.src_rel + " changed while it was copied");
    }
    UniqueFd out;
    try {
        out =
            fs::open_at(dir, replace ? tmp : base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    } catch (const SysError& e) {
        if (replace || e.error_code() != EEXIST) {
            throw;
        }
        taken();
        out = fs::open_at(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    }
    copy_content(in.get(), out.get(), now.st_size, d.file.src_rel, shown);
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
    if (replace) {
        rename_over();
    }
    return false;
}

} // namespace strata::builder
