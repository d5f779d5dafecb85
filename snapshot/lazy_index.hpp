// Lazy images: a content index per layer blob, so that a file's bytes can be
// read straight out of the compressed blob without unpacking the layer.
//
// The index is built on first use in one streaming pass over the blob (the
// blob digest is checked on the way) and kept in the store as
// lazy/<blob hex>.idx (gc removes it with its blob). It holds every tar entry's
// metadata and, for regular files, where the content starts in the
// uncompressed tar stream; seek points map stream offsets to places in the
// blob where decoding can start:
//   - uncompressed: none needed, the stream offset is the blob offset;
//   - gzip: a checkpoint every `span` bytes of output at a deflate block
//     boundary, with the 32 KiB window before it and the bits of the byte
//     the block starts in (zlib's examples/zran.c), plus each gzip member's
//     start;
//   - zstd: frame boundaries (at most one per MiB of output). A layer whose
//     frames are larger than k_max_zstd_gap (a single-frame layer, as Docker
//     and BuildKit write) is not seekable: its metadata is indexed all the
//     same, but its contents are read from its unpacked snapshot.
// A content read starts at the last seek point at or before the offset and
// skips the bytes in between; ContentReader keeps a few decoders open where
// the last reads ended, so that a file read sequentially is decoded once.
//
// Loading checks the version, the blob digest and size it describes, every
// bound (offsets within the stream and the blob, sorted seek points, windows
// of at most 32 KiB) and a SHA-256 of the whole file: a damaged index is
// rebuilt, never trusted.
#pragma once

#include "formats/compression.hpp"
#include "formats/digest.hpp"
#include "formats/tar.hpp"
#include "util/fd.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::snapshot {

class Store;

struct SeekPoint {
    enum class Kind : std::uint8_t {
        start,  // decoding starts here from nothing (blob start, gzip member, zstd frame)
        inflate // gzip: inside a member, at a deflate block boundary (bits + window)
    };
    Kind kind = Kind::start;
    std::uint8_t bits = 0; // inflate: bits of the byte at in - 1 still to be read
    std::uint64_t out = 0; // offset in the uncompressed stream
    std::uint64_t in = 0;  // offset in the blob
    // inflate: up to 32 KiB of output before out, kept by BlobIndex::storage
    std::string_view window;
};

struct IndexedEntry {
    formats::TarEntry entry;
    std::uint64_t content = 0; // regular files: content offset in the uncompressed stream
    // An index made from a zstd:chunked TOC (BlobIndex::toc): a regular
    // file's chunks are BlobIndex::chunks[first_chunk, first_chunk +
    // chunk_count), in file order; digest: the whole content's (the TOC's
    // "digest").
    std::uint32_t first_chunk = 0, chunk_count = 0;
    std::optional<formats::Digest> digest;
};

// Where one chunk of a file lies in a zstd:chunked blob: the zstd frames
// [begin, end) of the blob decode to the file's bytes [file_offset,
// file_offset + size); digest: the chunk's own (the TOC's "chunkDigest"),
// when the writer gave one.
struct ChunkLocator {
    std::uint64_t begin = 0, end = 0;
    std::uint64_t file_offset = 0, size = 0;
    std::optional<formats::Digest> digest;
};

struct BlobIndex {
    static constexpr std::uint32_t k_version = 1;
    // zstd frames larger than this make a layer not seekable.
    static constexpr std::uint64_t k_max_zstd_gap = 16ULL << 20;

    formats::Digest blob = formats::Digest::of({});
    std::uint64_t blob_size = 0;
    formats::Compression compression = formats::Compression::none;
    bool seekable = true; // false: contents come from the unpacked snapshot
    formats::Digest diff_id = formats::Digest::of({});
    std::uint64_t diff_size = 0;
    std::vector<SeekPoint> points;     // sorted by out (and in)
    std::vector<IndexedEntry> entries; // in tar order
    // What the seek points' windows point into: the index file mapped in
    // memory, or the windows made by build_blob_index. Loading an index
    // copies none of its (up to 32 KiB each) windows.
    std::shared_ptr<const void> storage;
    // Made from a zstd:chunked blob's footer and TOC (snapshot/lazy_toc.hpp)
    // instead of a pass over the blob: no seek points, no diff ID (diff_id
    // and diff_size are unknown and left empty), contents are read per chunk
    // (ChunkedContentReader). Never kept in lazy/: the TOC is read again.
    bool toc = false;
    std::string toc_digest;           // toc: "sha256:<hex>" of the TOC as stored
    std::vector<ChunkLocator> chunks; // toc: every regular file's chunks

    // The last seek point at or before out (there is always one at 0 for a
    // compressed blob).
    const SeekPoint& point_for(std::uint64_t out) const;
};

// One pass over the blob at blob_fd (read with pread from offset 0). Throws
// CorruptLayer-like errors naming the digest when the bytes do not hash to
// blob, and naming the entry for what the unpack path refuses (unsafe names,
// absurd sizes, bad whiteouts). span: output bytes between gzip checkpoints.
BlobIndex build_blob_index(int blob_fd, const formats::Digest& blob,
                           std::uint64_t span = 4ULL << 20);

std::string serialize_blob_index(const BlobIndex& index);
// Throws FormatError naming path when data is not a sound index of blob
// (blob_size bytes). The index's windows point into data when keep (which
// must hold data) is given, else into a copy of it.
BlobIndex parse_blob_index(std::string_view data, const formats::Digest& blob,
                           std::uint64_t blob_size, const std::string& path,
                           std::shared_ptr<const void> keep = {});

// <store>/lazy/<hex>.idx
std::string blob_index_path(const Store& store, const formats::Digest& blob);
// The blob's index from the store, or built (and kept) when it is missing or
// damaged (a warning says so for a damaged one).
BlobIndex load_blob_index(const Store& store, const formats::Digest& blob);

// Reads content bytes of one blob through its index. Thread-safe.
class ContentReader {
public:
    ContentReader(UniqueFd blob_fd, std::shared_ptr<const BlobIndex> index);
    ~ContentReader();
    ContentReader(const ContentReader&) = delete;
    ContentReader& operator=(const ContentReader&) = delete;

    // Exactly len bytes of the uncompressed stream at offset (the caller keeps
    // within a file's content). Throws naming the blob on corrupt data.
    void read(std::uint64_t offset, char* buf, std::size_t len);

    struct Decoder;

private:
    struct Cursor {
        std::unique_ptr<Decoder> decoder;
        std::uint64_t used = 0;
    };
    static constexpr std::size_t k_cursors = 4;
    UniqueFd m_fd;
    std::shared_ptr<const BlobIndex> m_index;
    std::mutex m_mu;
    std::vector<Cursor> m_cursors;
    std::uint64_t m_clock = 0;
};

} // namespace strata::snapshot

namespace strata::snapshot {

struct Image;

// --lazy / --no-lazy / neither.
enum class LazyMode { automatic, on, off };

// Whether to serve the image lazily (strata-lazy) instead of unpacking its
// snapshots. automatic: when the layers whose snapshot is missing weigh at
// least 64 MiB as stored (STRATA_LAZY_MIN_BYTES), /dev/fuse can be opened
// and every layer can be read lazily (its index is built here when
// missing); off: never; on: always, and throws Error saying why when it
// cannot (no /dev/fuse, a layer that is not seekable). An image without
// layers is never lazy. A lazily pulled image (a layer in partial/ with
// neither blob nor snapshot, snapshot/partial_blob.hpp) is lazy whatever its
// size, and throws Error saying to `strata pull` it with `off` or without
// /dev/fuse.
bool choose_lazy(const Store& store, const Image& image, LazyMode mode);

} // namespace strata::snapshot
