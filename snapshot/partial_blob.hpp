// Lazily pulled layers: a blob of which the store holds only the parts that
// were read, kept apart from the verified blobs (a blob under blobs/ always
// has its digest) until `strata pull` fetches the rest and checks the whole.
//
//   partial/<hex>/source.json  where the rest comes from: registry,
//                              repository, size, media type, TLS (written
//                              once, before the directory is renamed in)
//   partial/<hex>/data         a sparse file of the blob's size: its bytes
//                              are the blob's wherever `ranges` says so
//   partial/<hex>/ranges       an append-only record, one line per change:
//                              "+ BEGIN END" once those bytes are written,
//                              "- BEGIN END" when they are to be fetched
//                              again (they did not match their digest)
//
// Nothing in data is trusted by being there: a zstd:chunked layer's TOC is
// checked against the manifest's annotation, and every chunk against its
// digest when it is read (snapshot/lazy_toc.hpp); the whole blob against its
// digest when it is completed. Several processes (strata-lazy servers of
// several containers, a pull) may fill one partial blob at once: each line
// is one append, and a range missing here is looked for in the record again
// before it is fetched.
//
// gc removes partial/<hex> with the last image naming the layer, or once the
// whole blob is in blobs/.
#pragma once

#include "formats/digest.hpp"
#include "util/fd.hpp"

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace strata::snapshot {

class Store;

class PartialBlob {
public:
    struct Source {
        std::string registry;   // "127.0.0.1:5000", "docker.io"
        std::string repository; // "library/busybox"
        std::uint64_t size = 0; // the whole blob's
        std::string media_type;
        bool tls_verify = true;
    };
    // Writes length bytes of the blob from offset to sink, in order (a
    // registry range request); throws when it cannot.
    using Fetch = std::function<void(std::uint64_t offset, std::uint64_t length,
                                     const std::function<void(const char*, std::size_t)>& sink)>;

    // partial/<hex> of the store.
    static std::string dir_of(const Store& store, const formats::Digest& blob);
    static bool exists(const Store& store, const formats::Digest& blob);
    // Opens partial/<hex>, making it (empty) first when there is none (two
    // processes making it at once end up with the same one). Throws naming
    // the directory when its record is damaged.
    static std::shared_ptr<PartialBlob>
    open_or_create(const Store& store, const formats::Digest& blob, const Source& source);
    // Opens an existing partial/<hex>; throws naming it when there is none.
    static std::shared_ptr<PartialBlob> open(const Store& store, const formats::Digest& blob);

    PartialBlob(const PartialBlob&) = delete;
    PartialBlob& operator=(const PartialBlob&) = delete;

    const formats::Digest& digest() const noexcept { return m_digest; }
    const Source& source() const noexcept { return m_source; }
    const std::string& dir() const noexcept { return m_dir; }
    // The data file (pread it where ensure() said the bytes are).
    int fd() const noexcept { return m_data.get(); }

    // Makes the bytes [begin, end) present, fetching what is missing (gaps
    // of less than k_merge_gap between missing pieces are fetched with them,
    // in one request); refetch: fetch all of [begin, end) again. Returns the
    // bytes fetched. Thread-safe: threads fetch disjoint pieces at once, and
    // one that needs bytes another is fetching waits for them.
    std::uint64_t ensure(std::uint64_t begin, std::uint64_t end, const Fetch& fetch,
                         bool refetch = false);
    // The missing pieces of the whole blob, in order (as the record has them
    // now, other processes' fetches included); pieces less than merge_gap
    // apart come as one, with the present bytes between them.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> missing(std::uint64_t merge_gap = 0);
    // Bytes present, by the record.
    std::uint64_t present_bytes();

    static constexpr std::uint64_t k_merge_gap = 64 * 1024;

private:
    PartialBlob(std::string dir, formats::Digest digest, Source source);
    // Reads lines of the record appended since the last call (m_mu held).
    void catch_up();
    void append(char op, std::uint64_t begin, std::uint64_t end);
    void add(std::uint64_t begin, std::uint64_t end);
    void remove(std::uint64_t begin, std::uint64_t end);
    std::vector<std::pair<std::uint64_t, std::uint64_t>> gaps(std::uint64_t begin,
                                                              std::uint64_t end) const;
    // gaps(), those less than merge_gap apart joined.
    std::vector<std::pair<std::uint64_t, std::uint64_t>>
    merged_gaps(std::uint64_t begin, std::uint64_t end, std::uint64_t merge_gap) const;

    std::string m_dir;
    formats::Digest m_digest;
    Source m_source;
    UniqueFd m_data;
    UniqueFd m_record;
    std::mutex m_mu;                                                 // everything below
    std::condition_variable m_done;                                  // a fetch ended
    std::vector<std::pair<std::uint64_t, std::uint64_t>> m_inflight; // being fetched
    std::map<std::uint64_t, std::uint64_t> m_present; // begin -> end, disjoint, not touching
    std::uint64_t m_read = 0;                         // bytes of the record parsed
    std::string m_tail;                               // a line not yet ended
};

} // namespace strata::snapshot
