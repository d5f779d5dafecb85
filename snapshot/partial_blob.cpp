#include "snapshot/partial_blob.hpp"

#include "snapshot/store.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/scope.hpp"
#include "util/tempdir.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <iterator>
#include <sys/stat.h>
#include <unistd.h>

namespace strata::snapshot {

namespace {

constexpr std::size_t k_max_source = 64 * 1024;
// Bytes of a fetch written to data at once.
constexpr std::size_t k_write_block = 1 << 20;

PartialBlob::Source parse_source(const std::string& text, const std::string& path) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    auto bad = [&](const std::string& why) { return Error(path + ": " + why); };
    if (j.is_discarded() || !j.is_object()) {
        throw bad("not a JSON object");
    }
    PartialBlob::Source s;
    try {
        s.registry = j.at("registry").get<std::string>();
        s.repository = j.at("repository").get<std::string>();
        s.size = j.at("size").get<std::uint64_t>();
        s.media_type = j.value("mediaType", std::string());
        s.tls_verify = j.value("tlsVerify", true);
    } catch (const nlohmann::json::exception& e) {
        throw bad(e.what());
    }
    if (s.registry.empty() || s.repository.empty()) {
        throw bad("no registry or repository");
    }
    return s;
}

} // namespace

std::string PartialBlob::dir_of(const Store& store, const formats::Digest& blob) {
    return store.root() + "/partial/" + std::string(blob.hex());
}

bool PartialBlob::exists(const Store& store, const formats::Digest& blob) {
    return fs::is_dir(dir_of(store, blob));
}

PartialBlob::PartialBlob(std::string dir, formats::Digest digest, Source source)
    : m_dir(std::move(dir)), m_digest(std::move(digest)), m_source(std::move(source)) {
    m_data = fs::open(m_dir + "/data", O_RDWR | O_CLOEXEC);
    m_record = fs::open(m_dir + "/ranges", O_RDWR | O_APPEND | O_CLOEXEC);
    struct stat st = fs::fstat(m_data.get());
    if (static_cast<std::uint64_t>(st.st_size) != m_source.size) {
        throw Error(m_dir + "/data: " + std::to_string(st.st_size) + " bytes, the blob has " +
                    std::to_string(m_source.size));
    }
    std::lock_guard lock(m_mu);
    catch_up();
}

std::shared_ptr<PartialBlob> PartialBlob::open(const Store& store, const formats::Digest& blob) {
    std::string dir = dir_of(store, blob);
    if (!fs::is_dir(dir)) {
        throw Error("blob " + blob.str() + " was not pulled lazily into the store " + store.root());
    }
    std::string path = dir + "/source.json";
    Source s = parse_source(fs::read_file(path, k_max_source), path);
    return std::shared_ptr<PartialBlob>(new PartialBlob(dir, blob, std::move(s)));
}

std::shared_ptr<PartialBlob>
PartialBlob::open_or_create(const Store& store, const formats::Digest& blob, const Source& source) {
    std::string dir = dir_of(store, blob);
    if (!fs::is_dir(dir)) {
        fs::mkdirs(store.root() + "/partial", 0700);
        // Made whole in tmp/ and renamed in: a partial blob is never seen
        // without its source or its data file.
        TempDir tmp(store.tmp_dir(), "partial-");
        nlohmann::json j = {{"registry", source.registry},
                            {"repository", source.repository},
                            {"size", source.size},
                            {"mediaType", source.media_type},
                            {"tlsVerify", source.tls_verify}};
        fs::write_file_atomic(tmp.path() + "/source.json", j.dump() + "\n", 0600);
        UniqueFd data = fs::open(tmp.path() + "/data", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (::ftruncate(data.get(), static_cast<off_t>(source.size)) != 0) {
            throw_errno("ftruncate", tmp.path() + "/data");
        }
        fs::open(tmp.path() + "/ranges", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ::chmod(tmp.path().c_str(), 0700);
        if (::rename(tmp.path().c_str(), dir.c_str()) == 0) {
            tmp.keep();
        } else if (errno != EEXIST && errno != ENOTEMPTY) {
            throw_errno("rename", dir); // else another process made it first: use theirs
        }
    }
    auto p = open(store, blob);
    if (p->m_source.size != source.size) {
        throw Error(dir + ": the partial blob has " + std::to_string(p->m_source.size) +
                    " bytes, the manifest says " + std::to_string(source.size));
    }
    return p;
}

void PartialBlob::catch_up() {
    for (;;) {
        char buf[8192];
        ssize_t n = ::pread(m_record.get(), buf, sizeof buf, static_cast<off_t>(m_read));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw_errno("read", m_dir + "/ranges");
        }
        if (n == 0) {
            return;
        }
        m_read += static_cast<std::uint64_t>(n);
        m_tail.append(buf, static_cast<std::size_t>(n));
        std::size_t start = 0;
        for (std::size_t nl; (nl = m_tail.find('\n', start)) != std::string::npos; start = nl + 1) {
            std::string line = m_tail.substr(start, nl - start);
            char op = 0;
            std::uint64_t b = 0, e = 0;
            int used = 0;
            if (std::sscanf(line.c_str(), "%c %" SCNu64 " %" SCNu64 "%n", &op, &b, &e, &used) !=
                    3 ||
                static_cast<std::size_t>(used) != line.size() || (op != '+' && op != '-') ||
                b >= e || e > m_source.size) {
                throw Error(m_dir + "/ranges: damaged line \"" + line +
                            "\" (remove the directory: the layer is fetched again)");
            }
            if (op == '+') {
                add(b, e);
            } else {
                remove(b, e);
            }
        }
        m_tail.erase(0, start);
    }
}

void PartialBlob::add(std::uint64_t begin, std::uint64_t end) {
    // Merge with every range that overlaps or touches [begin, end).
    auto it = m_present.upper_bound(begin);
    if (it != m_present.begin() && std::prev(it)->second >= begin) {
        --it;
    }
    while (it != m_present.end() && it->first <= end) {
        begin = std::min(begin, it->first);
        end = std::max(end, it->second);
        it = m_present.erase(it);
    }
    m_present.emplace(begin, end);
}

void PartialBlob::remove(std::uint64_t begin, std::uint64_t end) {
    auto it = m_present.upper_bound(begin);
    if (it != m_present.begin() && std::prev(it)->second > begin) {
        --it;
    }
    while (it != m_present.end() && it->first < end) {
        auto [b, e] = *it;
        it = m_present.erase(it);
        if (b < begin) {
            m_present.emplace(b, begin);
        }
        if (e > end) {
            m_present.emplace(end, e);
            break;
        }
    }
}

std::vector<std::pair<std::uint64_t, std::uint64_t>>
PartialBlob::merged_gaps(std::uint64_t begin, std::uint64_t end, std::uint64_t merge_gap) const {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    for (auto [b, e] : gaps(begin, end)) {
        if (!out.empty() && b - out.back().second < merge_gap) {
            out.back().second = e;
        } else {
            out.emplace_back(b, e);
        }
    }
    return out;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> PartialBlob::gaps(std::uint64_t begin,
                                                                       std::uint64_t end) const {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    std::uint64_t at = begin;
    auto it = m_present.upper_bound(begin);
    if (it != m_present.begin()) {
        --it;
    }
    for (; it != m_present.end() && at < end; ++it) {
        if (it->second <= at) {
            continue;
        }
        if (it->first > at) {
            out.emplace_back(at, std::min(it->first, end));
        }
        at = std::max(at, it->second);
    }
    if (at < end) {
        out.emplace_back(at, end);
    }
    return out;
}

void PartialBlob::append(char op, std::uint64_t begin, std::uint64_t end) {
    char line[64];
    int n = std::snprintf(line, sizeof line, "%c %" PRIu64 " %" PRIu64 "\n", op, begin, end);
    // One write of a short line to an O_APPEND file: never interleaved with
    // another process's line.
    fs::write_all(m_record.get(), m_dir + "/ranges", line, static_cast<std::size_t>(n));
}

std::uint64_t PartialBlob::ensure(std::uint64_t begin, std::uint64_t end, const Fetch& fetch,
                                  bool refetch) {
    if (begin > end || end > m_source.size) {
        throw Error("blob " + m_digest.str() + ": bytes " + std::to_string(begin) + ".." +
                    std::to_string(end) + " asked of " + std::to_string(m_source.size));
    }
    if (begin == end) {
        return 0;
    }
    std::unique_lock lock(m_mu);
    if (!refetch && gaps(begin, end).empty()) {
        return 0; // the common case: no fetch, no system call
    }
    if (refetch) {
        remove(begin, end);
        append('-', begin, end);
    }
    // What is missing and not being fetched by another thread: wait for
    // those, fetch the rest (several threads fetch disjoint pieces at once).
    std::vector<std::pair<std::uint64_t, std::uint64_t>> todo;
    for (;;) {
        catch_up(); // another process may have fetched it meanwhile
        todo = merged_gaps(begin, end, k_merge_gap);
        bool busy = std::any_of(todo.begin(), todo.end(), [&](const auto& t) {
            return std::any_of(m_inflight.begin(), m_inflight.end(), [&](const auto& f) {
                return t.first < f.second && f.first < t.second;
            });
        });
        if (!busy) {
            break;
        }
        m_done.wait(lock);
    }
    if (todo.empty()) {
        return 0;
    }
    m_inflight.insert(m_inflight.end(), todo.begin(), todo.end());
    lock.unlock();
    ScopeExit finished([&] {
        std::lock_guard relock(m_mu);
        for (const auto& t : todo) {
            m_inflight.erase(std::find(m_inflight.begin(), m_inflight.end(), t));
        }
        m_done.notify_all();
    });
    std::uint64_t fetched = 0;
    for (auto [b, e] : todo) {
        std::string buf;
        std::uint64_t at = b;
        auto flush = [&] {
            fs::pwrite_all(m_data.get(), m_dir + "/data", buf.data(), buf.size(), at);
            at += buf.size();
            buf.clear();
        };
        fetch(b, e - b, [&](const char* data, std::size_t n) {
            if (at + buf.size() + n > e) {
                throw Error("blob " + m_digest.str() + ": more than the " + std::to_string(e - b) +
                            " bytes asked for came from " + m_source.registry);
            }
            buf.append(data, n);
            if (buf.size() >= k_write_block) {
                flush();
            }
        });
        flush();
        if (at != e) {
            throw Error("blob " + m_digest.str() + ": " + std::to_string(at - b) + " of the " +
                        std::to_string(e - b) + " bytes asked for came from " + m_source.registry);
        }
        // The record says so only once the bytes are written.
        std::lock_guard relock(m_mu);
        append('+', b, e);
        add(b, e);
        fetched += e - b;
    }
    return fetched;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> PartialBlob::missing(std::uint64_t merge_gap) {
    std::lock_guard lock(m_mu);
    catch_up();
    return merged_gaps(0, m_source.size, merge_gap);
}

std::uint64_t PartialBlob::present_bytes() {
    std::lock_guard lock(m_mu);
    catch_up();
    std::uint64_t n = 0;
    for (auto [b, e] : m_present) {
        n += e - b;
    }
    return n;
}

} // namespace strata::snapshot
