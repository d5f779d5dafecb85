#include "builder/copy_reuse.hpp"

#include "builder/copy.hpp"
#include "formats/zstd_chunked.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace strata::builder {

namespace {

bool same_time(const struct timespec& a, const struct timespec& b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// Copies the content of src into dst (an empty file), keeping dst's times.
void fill_from(const std::string& src, const std::string& dst) {
    UniqueFd in = fs::open(src, O_RDONLY | O_NOFOLLOW);
    UniqueFd out = fs::open(dst, O_WRONLY | O_NOFOLLOW);
    struct stat before = fs::fstat(out.get());
    struct stat st = fs::fstat(in.get());
    off_t left = st.st_size;
    while (left > 0) {
        ssize_t n =
            ::copy_file_range(in.get(), nullptr, out.get(), nullptr, static_cast<size_t>(left), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            // Any failure of the in-kernel copy: plain reads and writes.
            std::vector<char> buf(1 << 20);
            off_t done = st.st_size - left;
            while (left > 0) {
                ssize_t r = ::pread(in.get(), buf.data(),
                                    static_cast<size_t>(std::min<off_t>(left, 1 << 20)), done);
                if (r < 0 && errno == EINTR) {
                    continue;
                }
                if (r <= 0) {
                    throw_errno("read", src);
                }
                if (::pwrite(out.get(), buf.data(), static_cast<size_t>(r), done) != r) {
                    throw_errno("write", dst);
                }
                done += r;
                left -= r;
            }
            break;
        }
        left -= n;
    }
    struct timespec ts[2] = {before.st_atim, before.st_mtim};
    ::futimens(out.get(), ts);
}

} // namespace

std::optional<CopyReuse> CopyReuse::open(const snapshot::Store& store,
                                         const std::string& previous_fs,
                                         const formats::Descriptor& previous_layer,
                                         FileDigestMemo* memo) {
    auto ann =
        previous_layer.annotations.find(std::string(formats::k_chunked_manifest_checksum_key));
    if (memo == nullptr || ann == previous_layer.annotations.end() ||
        !store.has_blob(previous_layer.digest)) {
        return std::nullopt;
    }
    CopyReuse r;
    try {
        r.m_prev = fs::open(previous_fs, O_PATH | O_DIRECTORY);
        UniqueFd blob = store.open_blob(previous_layer.digest);
        auto toc =
            formats::read_chunked_toc(blob.get(), static_cast<std::uint64_t>(previous_layer.size),
                                      previous_layer.digest.str(), ann->second);
        if (!toc) {
            return std::nullopt;
        }
        for (const auto& e : toc->entries) {
            if (e.type == "reg" && e.size > 0 && e.digest.size() == 71) {
                r.m_old[e.name] = Old{e.digest.substr(7), e.size};
            }
        }
    } catch (const Error& e) {
        STRATA_LOG_WARN("COPY: not reusing files of {}: {}", previous_fs, e.what());
        return std::nullopt;
    }
    r.m_previous_fs = previous_fs;
    r.m_memo = memo;
    return r;
}

bool CopyReuse::defer(const std::string& dest, const std::string& src_rel, const struct stat& st) {
    if (st.st_size < k_min_link_size) {
        return false;
    }
    std::string name = dest;
    while (!name.empty() && name.front() == '/') {
        name.erase(0, 1);
    }
    auto it = m_old.find(name);
    if (it == m_old.end() || it->second.size != static_cast<std::uint64_t>(st.st_size)) {
        return false;
    }
    // The digest this build computed for the source (the cache key's), for
    // its current lstat: never a stale one.
    std::optional<std::string> digest = m_memo->find(src_rel, st);
    if (!digest || *digest != it->second.digest) {
        return false;
    }
    struct stat old {};
    if (::fstatat(m_prev.get(), name.c_str(), &old, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(old.st_mode) || old.st_size != st.st_size || !same_time(old.st_mtim, st.st_mtim)) {
        return false;
    }
    m_deferred.push_back(std::move(name));
    return true;
}

std::size_t CopyReuse::finish(const std::string& upper) {
    std::size_t linked = 0;
    for (const auto& name : m_deferred) {
        std::string placeholder = upper + "/" + name;
        std::string old_path = m_previous_fs + "/" + name;
        struct stat ph {
        }, old{};
        if (::lstat(placeholder.c_str(), &ph) != 0) {
            // The copy made a placeholder at this path; something else
            // there, never nothing. Were it elsewhere (a destination reached
            // through a symlink), an empty file would be left in the image:
            // fail the step instead.
            throw_errno("stat", placeholder);
        }
        if (!S_ISREG(ph.st_mode) || ph.st_size != 0 || ph.st_nlink != 1) {
            // Not the placeholder the copy made (a later source of the same
            // COPY replaced it): leave it.
            continue;
        }
        if (::lstat(old_path.c_str(), &old) != 0) {
            throw_errno("stat", old_path);
        }
        bool same = S_ISREG(old.st_mode) && (old.st_mode & 07777) == (ph.st_mode & 07777) &&
                    old.st_uid == ph.st_uid && old.st_gid == ph.st_gid &&
                    same_time(old.st_mtim, ph.st_mtim) &&
                    fs::read_xattrs(old_path) == fs::read_xattrs(placeholder);
        if (same) {
            std::string tmp = fs::dirname(placeholder) + "/.strata-link-" + fs::basename(name);
            if (::link(old_path.c_str(), tmp.c_str()) == 0) {
                if (::rename(tmp.c_str(), placeholder.c_str()) != 0) {
                    int err = errno;
                    ::unlink(tmp.c_str());
                    throw SysError("rename", placeholder, err);
                }
                ++linked;
                continue;
            }
            STRATA_LOG_DEBUG("COPY: cannot link {}: {}", old_path, std::strerror(errno));
        }
        // Same content (digest checked), other metadata or no link: copy it.
        fill_from(old_path, placeholder);
    }
    m_deferred.clear();
    return linked;
}

} // namespace strata::builder
