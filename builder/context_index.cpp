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

constexpr std::string_view k_memo_header = "strata-context-digests 1\n";

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
    : m_context_fd(context_fd), m_shown(std::move(shown)), m_memo_file(std::move(memo_file)),
      m_racy_window_ns(racy_window_ns) {
    struct timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    m_start_ns = ns_of(now);
    m_queue.emplace_back("");
    unsigned n = std::clamp(std::thread::hardware_concurrency(), 2u, 4u);
    try {
        for (unsigned i = 0; i < n; ++i) {
            m_threads.emplace_back([this] { walker(); });
        }
        // The memo is read beside the walk: the content hash's first look-up
        // would otherwise wait for it.
        m_threads.emplace_back([this] {
            std::lock_guard l(m_memo_mu);
            if (m_memo_loaded) {
                return;
            }
            try {
                load_memo();
            } catch (...) {
                m_memo.clear(); // a cache: the files are read instead
            }
        });
    } catch (...) {
        m_stop = true;
        m_walk_cv.notify_all();
        for (auto& t : m_threads) {
            t.join();
        }
        throw;
    }
}

ContextIndex::~ContextIndex() {
    {
        std::lock_guard saving(m_saver_mu);
        if (m_saver.joinable()) {
            m_saver.join();
        }
    }
    m_stop = true;
    {
        std::lock_guard l(m_walk_mu);
        m_walk_cv.notify_all();
    }
    for (auto& t : m_threads) {
        t.join();
    }
}

void ContextIndex::walker() noexcept {
    std::unique_lock l(m_walk_mu);
    for (;;) {
        m_walk_cv.wait(l, [&] { return m_stop || m_walk_done || !m_queue.empty(); });
        if (m_stop || m_walk_done) {
            return;
        }
        std::string rel = std::move(m_queue.back());
        m_queue.pop_back();
        m_busy++;
        l.unlock();
        try {
            walk_dir(rel);
        } catch (...) {
            l.lock();
            if (!m_walk_error) {
                m_walk_error = std::current_exception();
            }
            m_walk_done = true;
            m_busy--;
            m_walk_cv.notify_all();
            return;
        }
        l.lock();
        m_busy--;
        if (m_queue.empty() && m_busy == 0) {
            m_walk_done = true;
            m_walk_cv.notify_all();
            return;
        }
    }
}

// One directory: its entries sorted by name, each with its lstat metadata,
// hashed into one digest; subdirectories are queued for the walkers.
void ContextIndex::walk_dir(const std::string& rel) {
    std::string shown = rel.empty() ? m_shown : m_shown + "/" + rel;
    UniqueFd fd = rel.empty()
                      ? UniqueFd(::openat(m_context_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC))
                      : open_in_root(m_context_fd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
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
    std::vector<ListedEntry> entries;
    entries.reserve(names.size());
    bool racy = false;
    for (auto& n : names) {
        if (m_stop) {
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
        entries.push_back({std::move(n), st});
    }
    ::closedir(d);
    Sha256 h;
    h.update(records);
    auto digest = h.finish();
    std::lock_guard l(m_walk_mu);
    m_dirs.push_back({rel, std::string(reinterpret_cast<const char*>(digest.data()), digest.size()),
                      std::move(entries)});
    m_entries += m_dirs.back().entries.size();
    m_racy = m_racy || racy;
    if (!subdirs.empty()) {
        for (auto& s : subdirs) {
            m_queue.push_back(std::move(s));
        }
        m_walk_cv.notify_all();
    }
}

void ContextIndex::wait_walk() {
    std::unique_lock l(m_walk_mu);
    m_walk_cv.wait(l, [&] { return m_walk_done; });
    if (m_walk_error) {
        std::rethrow_exception(m_walk_error);
    }
}

const std::string& ContextIndex::fingerprint() {
    wait_walk();
    std::lock_guard l(m_walk_mu);
    if (!m_fingerprint) {
        std::sort(m_dirs.begin(), m_dirs.end(),
                  [](const DirResult& a, const DirResult& b) { return a.rel < b.rel; });
        Sha256 h;
        struct stat root {};
        if (::fstat(m_context_fd, &root) != 0) {
            throw_errno("stat", m_shown);
        }
        MetaRecord m{};
        m.ino = root.st_ino;
        m.size = static_cast<std::int64_t>(root.st_dev);
        h.update("strata-context-fingerprint 2\n");
        h.update(&m, sizeof m);
        for (const auto& dr : m_dirs) {
            h.update(dr.rel.c_str(), dr.rel.size() + 1);
            h.update(dr.digest);
        }
        m_fingerprint = h.finish_hex();
    }
    return *m_fingerprint;
}

const std::vector<ListedEntry>* ContextIndex::listed(const std::string& rel) {
    try {
        fingerprint(); // the walk done, m_dirs in its final order
    } catch (const Error&) {
        return nullptr;
    }
    std::lock_guard l(m_walk_mu);
    if (!m_dir_index) {
        m_dir_index.emplace();
        m_dir_index->reserve(m_dirs.size());
        for (std::size_t i = 0; i < m_dirs.size(); ++i) {
            std::string key = m_dirs[i].rel;
            if (!key.empty()) {
                key.pop_back(); // "a/b/" -> "a/b"
            }
            m_dir_index->emplace(std::move(key), i);
        }
    }
    auto it = m_dir_index->find(rel == "." ? std::string() : rel);
    return it == m_dir_index->end() ? nullptr : &m_dirs[it->second].entries;
}

bool ContextIndex::racy() {
    wait_walk();
    std::lock_guard l(m_walk_mu);
    return m_racy;
}

std::size_t ContextIndex::entries() {
    wait_walk();
    std::lock_guard l(m_walk_mu);
    return m_entries;
}

bool ContextIndex::is_racy(const struct stat& st) const {
    return ns_of(st.st_ctim) >= m_start_ns - m_racy_window_ns ||
           ns_of(st.st_mtim) >= m_start_ns - m_racy_window_ns;
}

// The memo file: a header line, then one line per file
//   <sha256 hex> <ino> <size> <mtime ns> <ctime ns> <mode> <path length> <path>\n
// and a last line "end <sha256 hex of everything before it>\n". Anything that
// does not parse, or a wrong checksum, discards the whole memo (it is a cache).
void ContextIndex::load_memo() {
    m_memo_loaded = true;
    std::string data;
    try {
        data = fs::read_file(m_memo_file);
    } catch (const SysError& e) {
        if (e.error_code() != ENOENT) {
            STRATA_LOG_DEBUG("context digests {}: {}", m_memo_file, e.what());
        }
        return;
    } catch (const Error& e) {
        STRATA_LOG_DEBUG("context digests {}: {}", m_memo_file, e.what());
        return;
    }
    auto bad = [&](const char* why) {
        STRATA_LOG_DEBUG("context digests {}: {}; ignored", m_memo_file, why);
        m_memo.clear();
    };
    std::size_t end = data.rfind("end ");
    if (data.compare(0, k_memo_header.size(), k_memo_header) != 0 || end == std::string::npos ||
        data.size() != end + 4 + 64 + 1 || data.back() != '\n') {
        return bad("not a digest memo");
    }
    if (Sha256::hex_of(std::string_view(data).substr(0, end)) != data.substr(end + 4, 64)) {
        return bad("checksum mismatch");
    }
    std::string_view s =
        std::string_view(data).substr(k_memo_header.size(), end - k_memo_header.size());
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
        m_memo[std::move(rel)] = std::move(r);
    }
}

std::optional<std::string> ContextIndex::find(const std::string& rel, const struct stat& st) {
    std::lock_guard l(m_memo_mu);
    if (!m_memo_loaded) {
        load_memo();
    }
    auto it = m_memo.find(rel);
    if (it == m_memo.end()) {
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
    std::lock_guard l(m_memo_mu);
    if (!m_memo_loaded) {
        load_memo();
    }
    if (is_racy(st)) {
        m_memo.erase(rel);
        m_memo_dirty = true;
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
    m_memo[rel] = std::move(r);
    m_memo_dirty = true;
}

void ContextIndex::save_in_background() {
    std::lock_guard saving(m_saver_mu); // stages may call it at once
    if (m_saver.joinable()) {
        m_saver.join();
    }
    {
        std::lock_guard l(m_memo_mu);
        if (!m_memo_dirty) {
            return;
        }
    }
    m_saver = std::thread([this] {
        try {
            save();
        } catch (const std::exception& e) {
            STRATA_LOG_WARN("cannot save the context's file digests to {}: {}", m_memo_file,
                            e.what());
        }
    });
}

void ContextIndex::save() {
    std::lock_guard l(m_memo_mu);
    if (!m_memo_dirty) {
        return;
    }
    // Entries of files that are gone (or were not read by any build since)
    // are dropped once the memo grows well past the context.
    std::size_t walked = 0;
    {
        std::lock_guard wl(m_walk_mu);
        walked = m_walk_done && !m_walk_error ? m_entries : 0;
    }
    bool prune = walked > 0 && m_memo.size() > 2 * walked + 1024;
    std::vector<const std::pair<const std::string, Remembered>*> rows;
    rows.reserve(m_memo.size());
    for (const auto& kv : m_memo) {
        if (!prune || kv.second.used) {
            rows.push_back(&kv);
        }
    }
    std::sort(rows.begin(), rows.end(), [](auto* a, auto* b) { return a->first < b->first; });
    std::string out(k_memo_header);
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
        fs::mkdirs(fs::dirname(m_memo_file), 0700);
        AtomicFile f(m_memo_file, 0600);
        f.write(out);
        f.commit();
        m_memo_dirty = false;
    } catch (const Error& e) {
        STRATA_LOG_WARN("cannot save the context's file digests to {}: {}", m_memo_file, e.what());
    }
}

} // namespace strata::builder
