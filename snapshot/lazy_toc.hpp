// The table of contents of a zstd:chunked layer as its lazy index: a
// BlobIndex made from the blob's footer and TOC alone (no pass over the
// blob), with each regular file's chunks located in the blob, and a reader
// that decodes only the frames of the chunks a read touches.
//
// What is trusted, and when it is checked:
//   - the TOC's digest against the layer's manifest-checksum annotation when
//     the descriptor has one (the manifest digest covers the annotation); the
//     TOC's metadata (names, modes, owners, sizes, links, xattrs) is then
//     trusted as containers/storage trusts it, after the checks the unpack
//     path makes (safe names, bounds, whiteouts) and formats' TOC checks
//     (offsets inside the blob, chunks that tile each file);
//   - a chunk's bytes against its chunkDigest, or against the file's digest
//     when the file is one chunk or its chunks carry no digest of their own
//     (then the whole file is decoded and hashed at its first read), the
//     first time the chunk is read: a mismatch is an Error naming the blob
//     and the file (EIO in strata-lazy), never wrong bytes;
//   - the layer's diff ID and the tar stream around the contents are not
//     checked here: only a full read of the blob (unpack, verify, save)
//     checks them.
#pragma once

#include "formats/oci.hpp"
#include "snapshot/lazy_index.hpp"
#include "util/fd.hpp"

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::snapshot {

class Store;

// The index of the zstd:chunked blob at blob_fd (blob_size bytes, named
// blob) made from its footer and TOC; nullopt when the blob has no
// zstd:chunked footer. expected_toc_digest: the manifest-checksum annotation
// ("" when the descriptor has none). Throws Error naming the blob (and the
// entry) for a damaged or hostile TOC, a TOC whose digest is not the
// annotation's, a regular file without a digest, and for what the unpack path
// refuses (unsafe names, absurd sizes, bad whiteouts). A chunk of more than
// BlobIndex::k_max_zstd_gap bytes makes the index not seekable (the image is
// unpacked, as for a layer of one big zstd frame).
std::optional<BlobIndex> build_toc_index(int blob_fd, const formats::Digest& blob,
                                         std::uint64_t blob_size,
                                         std::string_view expected_toc_digest);

// The lazy index of a layer in the store: made from its TOC when the blob is
// zstd:chunked, else load_blob_index's (kept in lazy/, built by one pass).
// A lazily pulled layer (partial/<hex>, no blob yet) has only its TOC, which
// must match the descriptor's manifest-checksum annotation: any error about
// it is thrown, there is no pass to fall back to.
// A TOC that build_toc_index refuses (damaged, not the annotation's, a kind
// not read here) is logged as a warning and the pass is used: the blob is in
// the store under its digest, and the pass trusts nothing of the TOC.
BlobIndex load_lazy_index(const Store& store, const formats::Descriptor& layer);

// Whether a zstd:chunked layer can be read lazily (its TOC index is
// seekable); nullopt when the layer's blob is not zstd:chunked or its TOC is
// refused (as load_lazy_index: the pass decides then).
std::optional<bool> toc_index_seekable(const Store& store, const formats::Descriptor& layer);

// Reads regular files' bytes of a TOC-indexed blob, chunk by chunk, verifying
// each chunk the first time it is decoded. Keeps the last decoded chunks
// (up to k_cache_bytes) so that a file read in pieces is decoded once.
// Thread-safe.
class ChunkedContentReader {
public:
    // For a blob the store has only parts of (a lazily pulled layer,
    // snapshot/partial_blob.hpp): makes the bytes [begin, end) of blob_fd
    // present before they are read; refetch: fetch them again although they
    // are there (they did not match their digest: a chunk is fetched once
    // more before it is called damaged). Throws when it cannot.
    using RangeSource = std::function<void(std::uint64_t begin, std::uint64_t end, bool refetch)>;

    ChunkedContentReader(UniqueFd blob_fd, std::shared_ptr<const BlobIndex> index,
                         RangeSource source = {});
    ~ChunkedContentReader();
    ChunkedContentReader(const ChunkedContentReader&) = delete;
    ChunkedContentReader& operator=(const ChunkedContentReader&) = delete;

    // Exactly len bytes of entry number `entry` (a regular file of the index)
    // at offset off (the caller keeps within its size). Throws Error naming
    // the blob and the file when a chunk does not decode or does not match
    // its digest.
    void read(std::size_t entry, std::uint64_t off, char* buf, std::size_t len);

    static constexpr std::size_t k_cache_bytes = 32U << 20;
    // With a RangeSource: the most bytes of a file's frames made present at
    // once (a read fetches on ahead in the file, up to this).
    static constexpr std::uint64_t k_prefetch_bytes = 4U << 20;

private:
    using Bytes = std::shared_ptr<const std::string>;
    Bytes chunk(std::size_t entry, std::uint32_t c);
    Bytes decode(std::size_t entry, std::uint32_t c) const;
    void prefetch(std::size_t entry, std::uint32_t c) const;
    void verify_file(std::size_t entry);
    std::string what(std::size_t entry) const;

    UniqueFd m_fd;
    std::shared_ptr<const BlobIndex> m_index;
    RangeSource m_source;
    std::mutex m_mu;                                    // guards m_verified, m_cache, m_cached
    std::vector<bool> m_verified;                       // per chunk of the index
    std::list<std::pair<std::uint32_t, Bytes>> m_cache; // most recent first
    std::size_t m_cached = 0;                           // bytes in m_cache
};

} // namespace strata::snapshot
