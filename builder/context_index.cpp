#include "builder/context_index.hpp"

#include "util/atomic_file.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/root.hpp"
#include "util/sha256.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

namespace strata::builder {

namespace {

constexpr std::string_view kMemoHeader = "strata-context-digests 1\n";

std::int64_t ns_of(const struct timespec& t) {
    return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

// The fixed-size metadata of one entry as hashed into the fingerprint.
struct MetaRecord {
    std::uint64_t ino;
    std::int64_t size;
    std::int64_t mtime_ns;
    std::int64_t ctime_ns;
    std::uint32_t mode;
    std::uint32_t uid;
    std::uint32_t gid;
    std::uint32_t pad;
};

template <typename T>
bool parse_num(std::string_view& s, T& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || p == s.data() + s.size() || *p != ' ') {
        return false;
    }
    s.remove_prefix(static_cast<std::size_t>(p - s.data()) + 1);
    return true;
}

} // namespace

ContextIndex::ContextIndex(int context_fd, std::string shown, std::string memo_file,
                           std::int64_t racy_window_ns)
    : context_fd_(context_fd), shown_(std::move(shown)), memo_file_(std::move(memo_file)),
      racy_window_ns_(racy_window_ns) {
    struct timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    start_ns_ = ns_of(now);
    queue_.emplace_back("");
    unsigned n = std::clamp(std::thread::hardware_concurrency(), 2u, 4u);
    try {
        for (unsigned i = 0; i < n; ++i) {
            threads_.emplace_back([this] { walker(); });
        }
    } catch (...) {
        stop_ = true;
        walk_cv_.notify_all();
        for (auto& t : threads_) {
            t.join();
        }
        throw;
    }
}

ContextIndex::~ContextIndex() {
    stop_ = true;
    {
        std::lock_guard l(walk_mu_);
        walk_cv_.notify_all();
    }
    for (auto& t : threads_) {
        t.join();
    }
}

void ContextIndex::walker() noexcept {
    std::unique_lock l(walk_mu_);
    for (;;) {
        walk_cv_.wait(l, [&] { return stop_ || walk_done_ || !queue_.empty(); });
        if (stop_ || walk_done_) {
            return;
        }
        std::string rel = std::move(queue_.back());
        queue_.pop_back();
        busy_++;
        l.unlock();
        try {
            walk_dir(rel);
        } catch (...) {
            l.lock();
            if (!walk_error_) {
                walk_error_ = std::current_exception();
            }
            walk_done_ = true;
            busy_--;
            walk_cv_.notify_all();
            return;
        }
        l.lock();
        busy_--;
        if (queue_.empty() && busy_ == 0) {
            walk_done_ = true;
            walk_cv_.notify_all();
            return;
        }
    }
}

// One directory: its entries sorted by name, each with its lstat metadata,
// hashed into one digest; subdirectories are queued for the walkers.
void ContextIndex::walk_dir(const std::string& rel) {
    std::string shown = rel.empty() ? shown_ : shown_ + "/" + rel;
    UniqueFd fd = rel.empty() ? UniqueFd(::openat(context_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC))
                              : open_in_root(context_fd_, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!fd) {
        throw_errno("open", shown);
    }
    int dfd = fd.get();
    DIR* d = ::fdopendir(dfd);
    if (d == nullptr) {
        throw_errno("opendir", shown);
    }
    (void)fd.release();
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* de = ::readdir(d)) {
        if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0) {
            names.emplace_back(de->d_name);
        }
    }
    int read_errno = errno;
    if (read_errno != 0) {
        ::closedir(d);
        throw SysError("readdir", shown, read_errno);
    }
    std::sort(names.begin(), names.end());
    std::string records; // hashed in one update: per-entry updates cost more than the hashing
    records.reserve(names.size() * (sizeof(MetaRecord) + 16));
    std::vector<std::string> subdirs;
    bool racy = false;
    for (const auto& n : names) {
        if (stop_) {
            break;
        }
        struct stat st;
        if (::fstatat(dfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            int err = errno;
            ::closedir(d);
            throw SysError("stat", shown + "/" + n, err);
        }
        MetaRecord m{};
        m.ino = st.st_ino;
        m.size = st.st_size;
        m.mtime_ns = ns_of(st.st_mtim);
        m.ctime_ns = ns_of(st.st_ctim);
        m.mode = st.st_mode;
        m.uid = st.st_uid;
        m.gid = st.st_gid;
        records.append(n.c_str(), n.size() + 1); // with its NUL: names cannot run together
        records.append(reinterpret_cast<const char*>(&m), sizeof m);
        racy = racy || is_racy(st);
        if (S_ISDIR(st.st_mode)) {
            subdirs.push_back(rel + n + "/");
        }
    }
    ::closedir(d);
    Sha256 h;
    h.update(records);
    auto digest = h.finish();
    std::lock_guard l(walk_mu_);
    dirs_.push_back({rel, std::string(reinterpret_cast<const char*>(digest.data()), digest.size())});
    entries_ += names.size();
    racy_ = racy_ || racy;
    if (!subdirs.empty()) {
        for (auto& s : subdirs) {
            queue_.push_back(std::move(s));
        }
        walk_cv_.notify_all();
    }
}

void ContextIndex::wait_walk() {
    std::unique_lock l(walk_mu_);
    walk_cv_.wait(l, [&] { return walk_done_; });
    if (walk_error_) {
        std::rethrow_exception(walk_error_);
    }
}

const std::string& ContextIndex::fingerprint() {
    wait_walk();
    std::lock_guard l(walk_mu_);
    if (!fingerprint_) {
        std::sort(dirs_.begin(), dirs_.end(),
                  [](const DirResult& a, const DirResult& b) { return a.rel < b.rel; });
        Sha256 h;
        struct stat root {};
        if (::fstat(context_fd_, &root) != 0) {
            throw_errno("stat", shown_);
        }
        MetaRecord m{};
        m.ino = root.st_ino;
        m.size = static_cast<std::int64_t>(root.st_dev);
        h.update("strata-context-fingerprint 2\n");
        h.update(&m, sizeof m);
        for (const auto& dr : dirs_) {
            h.update(dr.rel.c_str(), dr.rel.size() + 1);
            h.update(dr.digest);
        }
        fingerprint_ = h.finish_hex();
    }
    return *fingerprint_;
}

bool ContextIndex::racy() {
    wait_walk();
    std::lock_guard l(walk_mu_);
    return racy_;
}

std::size_t ContextIndex::entries() {
    wait_walk();
    std::lock_guard l(walk_mu_);
    return entries_;
}

bool ContextIndex::is_racy(const struct stat& st) const {
    return ns_of(st.st_ctim) >= start_ns_ - racy_window_ns_ || ns_of(st.st_mtim) >= start_ns_ - racy_window_ns_;
}

// The memo file: a header line, then one line per file
//   <sha256 hex> <ino> <size> <mtime ns> <ctime ns> <mode> <path length> <path>\n
// and a last line "end <sha256 hex of everything before it>\n". Anything that
// does not parse, or a wrong checksum, discards the whole memo (it is a cache).
void ContextIndex::load_memo() {
    memo_loaded_ = true;
    std::string data;
    try {
        data = fs::read_file(memo_file_);
    } catch (const SysError& e) {
        if (e.error_code() != ENOENT) {
            STRATA_LOG_DEBUG("context digests {}: {}", memo_file_, e.what());
        }
        return;
    } catch (const Error& e) {
        STRATA_LOG_DEBUG("context digests {}: {}", memo_file_, e.what());
        return;
    }
    auto bad = [&](const char* why) {
        STRATA_LOG_DEBUG("context digests {}: {}; ignored", memo_file_, why);
        memo_.clear();
    };
    std::size_t end = data.rfind("end ");
    if (data.compare(0, kMemoHeader.size(), kMemoHeader) != 0 || end == std::string::npos ||
        data.size() != end + 4 + 64 + 1 || data.back() != '\n') {
        return bad("not a digest memo");
    }
    if (Sha256::hex_of(std::string_view(data).substr(0, end)) != data.substr(end + 4, 64)) {
        return bad("checksum mismatch");
    }
    std::string_view s = std::string_view(data).substr(kMemoHeader.size(), end - kMemoHeader.size());
    while (!s.empty()) {
        Remembered r;
        if (s.size() < 65 || s[64] != ' ') {
            return bad("short line");
        }
        r.digest = std::string(s.substr(0, 64));
        s.remove_prefix(65);
        std::size_t len = 0;
        if (!parse_num(s, r.ino) || !parse_num(s, r.size) || !parse_num(s, r.mtime_ns) ||
            !parse_num(s, r.ctime_ns) || !parse_num(s, r.mode) || !parse_num(s, len) ||
            s.size() < len + 1 || s[len] != '\n') {
            return bad("malformed line");
        }
        std::string rel(s.substr(0, len));
        s.remove_prefix(len + 1);
        memo_[std::move(rel)] = std::move(r);
    }
}

std::optional<std::string> ContextIndex::find(const std::string& rel, const struct stat& st) {
    std::lock_guard l(memo_mu_);
    if (!memo_loaded_) {
        load_memo();
    }
    auto it = memo_.find(rel);
    if (it == memo_.end()) {
        return std::nullopt;
    }
    Remembered& r = it->second;
    if (r.ino != st.st_ino || r.size != st.st_size || r.mtime_ns != ns_of(st.st_mtim) ||
        r.ctime_ns != ns_of(st.st_ctim) || r.mode != st.st_mode || is_racy(st)) {
        return std::nullopt;
    }
    r.used = true;
    return r.digest;
}

void ContextIndex::learn(const std::string& rel, const struct stat& st, const std::string& digest) {
    std::lock_guard l(memo_mu_);
    if (!memo_loaded_) {
        load_memo();
    }
    if (is_racy(st)) {
        memo_.erase(rel);
        memo_dirty_ = true;
        return;
    }
    Remembered r;
    r.ino = st.st_ino;
    r.size = st.st_size;
    r.mtime_ns = ns_of(st.st_mtim);
    r.ctime_ns = ns_of(st.st_ctim);
    r.mode = st.st_mode;
    r.digest = digest;
    r.used = true;
    memo_[rel] = std::move(r);
    memo_dirty_ = true;
}

void ContextIndex::save() {
    std::lock_guard l(memo_mu_);
    if (!memo_dirty_) {
        return;
    }
    // Entries of files that are gone (or were not read by any build since)
    // are dropped once the memo grows well past the context.
    std::size_t walked = 0;
    {
        std::lock_guard wl(walk_mu_);
        walked = walk_done_ && !walk_error_ ? entries_ : 0;
    }
    bool prune = walked > 0 && memo_.size() > 2 * walked + 1024;
    std::vector<const std::pair<const std::string, Remembered>*> rows;
    rows.reserve(memo_.size());
    for (const auto& kv : memo_) {
        if (!prune || kv.second.used) {
            rows.push_back(&kv);
        }
    }
    std::sort(rows.begin(), rows.end(), [](auto* a, auto* b) { return a->first < b->first; });
    std::string out(kMemoHeader);
    out.reserve(rows.size() * 140);
    for (const auto* kv : rows) {
        const Remembered& r = kv->second;
        out += r.digest;
        out += fmt::format(" {} {} {} {} {} {} ", r.ino, r.size, r.mtime_ns, r.ctime_ns, r.mode,
                           kv->first.size());
        out += kv->first;
        out += '\n';
    }
    std::string sum = Sha256::hex_of(out);
    out += "end " + sum + "\n";
    try {
        fs::mkdirs(fs::dirname(memo_file_), 0700);
        AtomicFile f(memo_file_, 0600);
        f.write(out);
        f.commit();
        memo_dirty_ = false;
    } catch (const Error& e) {
        STRATA_LOG_WARN("cannot save the context's file digests to {}: {}", memo_file_, e.what());
    }
}

} // namespace strata::builder
