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
                 std::int64_t racy_window_ns = k_racy_window_ns);
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
    // The walk's entries of the directory at rel ("." or "" for the root,
    // "a/b"), sorted by name, each with the lstat it was fingerprinted
    // with; nullptr when the walk met no such directory or failed. For
    // CopyOptions::listed: the content hash and the copy then see the
    // context as the fingerprint did, and do not stat it again.
    const std::vector<ListedEntry>* listed(const std::string& rel);

    // FileDigestMemo
    std::optional<std::string> find(const std::string& rel, const struct stat& st) override;
    void learn(const std::string& rel, const struct stat& st, const std::string& digest) override;

    // Writes the memo when something was learned (temp file + rename). A
    // failure is logged and ignored: it is a cache.
    void save();
    // save() on a thread of its own (joined by the next call, and by the
    // destructor); find() and learn() wait while it writes.
    void save_in_background();

    // How far back from the start of the walk a ctime counts as racy.
    static constexpr std::int64_t k_racy_window_ns = 2'000'000'000;

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
        std::vector<ListedEntry> entries;
    };

    void walker() noexcept;
    void walk_dir(const std::string& rel);
    void wait_walk();
    bool is_racy(const struct stat& st) const;
    void load_memo();

    int m_context_fd;
    std::string m_shown;
    std::string m_memo_file;
    std::int64_t m_start_ns = 0;
    std::int64_t m_racy_window_ns;

    // The walk: a queue of directories (relative paths, "" for the root).
    std::mutex m_walk_mu;
    std::condition_variable m_walk_cv;
    std::vector<std::string> m_queue;
    std::size_t m_busy = 0;
    bool m_walk_done = false;
    std::exception_ptr m_walk_error;
    std::vector<DirResult> m_dirs;
    std::size_t m_entries = 0;
    bool m_racy = false;
    std::atomic<bool> m_stop{false};
    std::vector<std::thread> m_threads;
    std::mutex m_saver_mu; // guards m_saver
    std::thread m_saver;
    std::optional<std::string> m_fingerprint;
    // rel ("" for the root, "a/b") -> index in m_dirs, made by the first
    // listed() after the walk (m_dirs does not change after that).
    std::optional<std::unordered_map<std::string, std::size_t>> m_dir_index;

    std::mutex m_memo_mu;
    bool m_memo_loaded = false;
    bool m_memo_dirty = false;
    std::unordered_map<std::string, Remembered> m_memo;
};

} // namespace strata::builder
