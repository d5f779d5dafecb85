// What the build cache knows about the build context, BuildKit's stat-keyed
// content cache in two parts:
//
// - A fingerprint of the whole context's metadata (path, type, mode, owner,
//   size, mtime and ctime in ns, inode of every entry), walked once per build
//   on a few threads, started as soon as the Dockerfile is read. The content
//   hash of a COPY's sources is remembered under it, so an unchanged context
//   is stat'ed but not read.
// - A stat-keyed memo of file content digests, kept in the store's cache
//   directory per context directory: when the fingerprint changed (one file
//   edited), only the files whose lstat changed are read again.
//
// A file changed so recently that another change in the same clock tick
// could leave its size, mtime and ctime as they were ("racy", as git calls
// it) is never remembered: neither its digest nor a fingerprint taken while
// it was racy. A content change is therefore always seen, at the price of
// re-reading a file that was edited within the last two seconds.
#pragma once

#include "builder/copy.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unordered_map>
#include <vector>

namespace strata::builder {

class ContextIndex final : public FileDigestMemo {
public:
    // Starts walking the context directory open as context_fd (which must stay
    // open for the object's life) on background threads. shown: the context's
    // path for messages; memo_file: where the file digests are kept (loaded on
    // first use, written by save()).
    ContextIndex(int context_fd, std::string shown, std::string memo_file,
                 std::int64_t racy_window_ns = kRacyWindowNs);
    ContextIndex(const ContextIndex&) = delete;
    ContextIndex& operator=(const ContextIndex&) = delete;
    ~ContextIndex() override; // stops and joins the walk

    // Hex digest of every entry's metadata; waits for the walk and throws its
    // error (an unreadable directory, named).
    const std::string& fingerprint();
    // Whether some entry's ctime was within the racy window of the walk; a
    // content hash must then not be remembered under this fingerprint.
    bool racy();
    // Number of entries walked (after fingerprint()).
    std::size_t entries();

    // FileDigestMemo
    std::optional<std::string> find(const std::string& rel, const struct stat& st) override;
    void learn(const std::string& rel, const struct stat& st, const std::string& digest) override;

    // Writes the memo when something was learned (temp file + rename). A
    // failure is logged and ignored: it is a cache.
    void save();

    // How far back from the start of the walk a ctime counts as racy.
    static constexpr std::int64_t kRacyWindowNs = 2'000'000'000;

private:
    struct Remembered {
        std::uint64_t ino = 0;
        std::int64_t size = 0;
        std::int64_t mtime_ns = 0;
        std::int64_t ctime_ns = 0;
        std::uint32_t mode = 0;
        std::string digest;
        bool used = false; // looked up or learned in this build
    };
    struct DirResult {
        std::string rel;
        std::string digest; // binary, 32 bytes
    };

    void walker() noexcept;
    void walk_dir(const std::string& rel);
    void wait_walk();
    bool is_racy(const struct stat& st) const;
    void load_memo();

    int context_fd_;
    std::string shown_;
    std::string memo_file_;
    std::int64_t start_ns_ = 0;
    std::int64_t racy_window_ns_;

    // The walk: a queue of directories (relative paths, "" for the root).
    std::mutex walk_mu_;
    std::condition_variable walk_cv_;
    std::vector<std::string> queue_;
    std::size_t busy_ = 0;
    bool walk_done_ = false;
    std::exception_ptr walk_error_;
    std::vector<DirResult> dirs_;
    std::size_t entries_ = 0;
    bool racy_ = false;
    std::atomic<bool> stop_{false};
    std::vector<std::thread> threads_;
    std::optional<std::string> fingerprint_;

    std::mutex memo_mu_;
    bool memo_loaded_ = false;
    bool memo_dirty_ = false;
    std::unordered_map<std::string, Remembered> memo_;
};

} // namespace strata::builder
