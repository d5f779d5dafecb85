// zstd:chunked layers, the format containers/storage (podman, buildah, CRI-O)
// writes and reads: a zstd stream whose decompressed bytes are an ordinary
// tar (the layer's diff ID), cut into frames so that each regular file's
// content sits in frames of its own:
//
//   [frame: tar header(s) + padding] [frame(s): file 1's content, one per chunk]
//   [frame: padding + next header(s)] ... [frame: end-of-archive blocks]
//   [skippable frame: the TOC JSON, zstd-compressed]
//   [skippable frame: 64-byte footer: TOC offset, sizes, type 1, "GNUlInUx"]
//
// Every zstd decoder decodes the whole blob (skippable frames are skipped); a
// reader that knows the format reads the footer, then the TOC ("manifest"),
// then any file's content alone. The TOC's sha256 (of its compressed bytes)
// goes into the layer descriptor's annotations (chunked_annotations()).
// Not written: the optional tar-split frame (containers/storage then rebuilds
// tar headers from the TOC), rolling-checksum chunk boundaries (big files are
// cut every k_chunked_chunk_size bytes instead) and chunk digests.
#pragma once

#include "formats/digest.hpp"
#include "formats/tar.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::formats {

// One entry of a zstd:chunked table of contents (containers/storage's
// "FileMetadata" in its TOC JSON), in the blob's tar order.
struct ChunkedEntry {
    std::string type;       // "reg", "dir", "symlink", "hardlink", "char", "block", "fifo", "chunk"
    std::string name;       // the tar entry's name, cleaned: "a/b", no leading "./" or "/"
    std::string link_name;  // symlink target, or hardlink target's name
    std::uint32_t mode = 0; // permission and setuid/setgid/sticky bits
    std::uint32_t uid = 0, gid = 0;
    std::uint64_t size = 0; // reg: the whole file's size
    std::int64_t mtime_sec = 0;
    std::uint32_t mtime_nsec = 0;
    std::uint32_t devmajor = 0, devminor = 0;
    std::map<std::string, std::string> xattrs; // decoded values
    std::string digest; // reg: "sha256:<hex>" of the whole content; "" otherwise
    // reg (its first chunk) and chunk entries: "sha256:<hex>" of this chunk's
    // uncompressed bytes when the writer gave one (containers/storage's
    // "chunkDigest"); "" otherwise.
    std::string chunk_digest;
    // The compressed bytes [offset, end_offset) of the blob are the zstd
    // frame(s) holding this piece of content: for "reg" its first chunk, for
    // "chunk" that chunk. 0, 0 when there is no content.
    std::uint64_t offset = 0, end_offset = 0;
    // reg (first chunk) and chunk entries: where this chunk's bytes sit in the
    // file, and how many there are.
    std::uint64_t chunk_offset = 0, chunk_size = 0;
};

struct ChunkedToc {
    std::vector<ChunkedEntry> entries;
    std::string digest; // "sha256:<hex>" of the TOC as stored (the manifest-checksum annotation)
};

// The footer's skippable frame, the blob's last bytes: what a reader fetches
// first, with the TOC (at the manifest-position annotation, after its own
// 8-byte skippable frame header).
constexpr std::uint64_t k_chunked_footer_frame = 8 + 64;

// nullptr: the blob has no zstd:chunked footer (a plain zstd/gzip/tar blob).
// Throws an Error naming `what` (the blob's digest) for a damaged or hostile
// footer or TOC (offsets past the blob, absurd sizes, bad JSON, unsafe names),
// and when expected_digest is given and the TOC's digest differs from it.
// The TOC is shared: a process keeps the last few it parsed and hands the
// same one to every reader of the layer.
std::shared_ptr<const ChunkedToc> read_chunked_toc(int blob_fd, std::uint64_t blob_size,
                                                   std::string_view what,
                                                   std::string_view expected_digest = {});

// The content bytes of one reg/chunk entry: reads [offset, end_offset) with
// pread, decompresses, checks that exactly expected_size bytes come out.
// Throws naming `what` otherwise.
std::string read_chunked_range(int blob_fd, std::uint64_t offset, std::uint64_t end_offset,
                               std::uint64_t expected_size, std::string_view what);

// ------------------------------------------------------------------ writing

// Regular files longer than this are cut into chunks of this size, each its
// own frame (and TOC "chunk" entry): a reader fetches a part of a big file
// alone, and the writer compresses the chunks of one file in parallel.
constexpr std::uint64_t k_chunked_chunk_size = std::uint64_t{1} << 20;

// The layer descriptor annotations containers/storage sets on a zstd:chunked
// layer.
inline constexpr std::string_view k_chunked_manifest_checksum_key =
    "io.github.containers.zstd-chunked.manifest-checksum";
inline constexpr std::string_view k_chunked_manifest_position_key =
    "io.github.containers.zstd-chunked.manifest-position";

// Where the two SHA-256 passes of a zstd:chunked layer stood at one frame
// boundary: after tar_offset bytes of the tar (the diff ID's hash) and
// blob_offset bytes of the blob (the blob digest's), as Sha256::state()
// strings. A writer given a previous layer's checkpoints (reuse_from) does
// not hash the bytes its blob shares with the previous blob from the start:
// the blob's hash goes on from the last checkpoint before the first
// difference. (The diff ID's is hashed whole, on the thread that renders
// the tar, beside the output; diff_state is kept for readers of the tar.)
struct HashCheckpoint {
    std::uint64_t tar_offset = 0, blob_offset = 0;
    std::string diff_state, blob_state;
};
// ChunkedWriter::add_linked: the previous layer's frames of a linked file
// do not decode to its content.
class LinkedFramesDamaged : public Error {
public:
    using Error::Error;
};

// A checkpoint every this many bytes of tar (at most).
constexpr std::uint64_t k_checkpoint_interval = std::uint64_t{4} << 20;

// The checkpoints of the blob `blob` (its digest and size) as a document of
// their own, and back: nullopt when the text is not such a document for
// that blob (damaged, another blob's, unordered or out of range offsets, a
// bad state, or its own checksum not matching).
std::string checkpoints_document(const std::vector<HashCheckpoint>& checkpoints, const Digest& blob,
                                 std::uint64_t blob_size);
std::optional<std::vector<HashCheckpoint>>
parse_checkpoints_document(std::string_view text, const Digest& blob, std::uint64_t blob_size);

struct ChunkedLayerInfo {
    LayerDigests digests{Digest::of(""), 0, Digest::of(""), 0};
    std::string toc_digest;         // the manifest-checksum annotation
    std::uint64_t toc_offset = 0;   // of the compressed TOC in the blob
    std::uint64_t toc_size = 0;     // compressed
    std::uint64_t toc_raw_size = 0; // uncompressed JSON
    std::uint64_t reused_bytes = 0; // content bytes whose frames came from a previous layer
    std::uint64_t reused_files = 0; // regular files all of whose frames were reused
    std::uint64_t reused_headers = 0;        // runs of tar headers whose frames were reused
    std::vector<HashCheckpoint> checkpoints; // of this layer, for the next writer
    std::uint64_t hashed_from = 0; // blob offset the blob's hash went on from (0: hashed whole)
};

// {manifest-checksum, manifest-position} as containers/storage writes them.
std::map<std::string, std::string> chunked_annotations(const ChunkedLayerInfo& info);

// Writes a zstd:chunked layer: the same entries as TarWriter (same order,
// same uncompressed bytes, same diff ID), framed as above. Frames are
// compressed in parallel on `threads` workers; the output does not depend on
// the thread count. Both digests are computed in the pass.
class ChunkedWriter {
public:
    struct Options {
        int level = 0;   // zstd level; 0 = zstd's default (3)
        int threads = 0; // compression workers; 0 = all cores
        std::optional<std::int64_t> clamp_mtime;
        std::string out_name; // named by write errors
        // Start the writeback of every 8 MiB written, so that an fsync right
        // after finish() finds little left to write. Off when the fsync
        // comes later, on another thread: written back early, the blob's
        // data would be flushed by the next fsync of any small file (an
        // ext4 journal commit waits for the data of the blocks it
        // allocates), and that may be on the caller's path.
        bool start_writeback = true;
    };
    // out_fd is not owned.
    ChunkedWriter(int out_fd, Options opts);
    ~ChunkedWriter();
    ChunkedWriter(const ChunkedWriter&) = delete;
    ChunkedWriter& operator=(const ChunkedWriter&) = delete;

    // A previous zstd:chunked layer (blob fd, not owned, kept open until
    // finish(); its TOC as read_chunked_toc returned it, kept as long as the
    // writer): a chunk of a file
    // whose path, size and chunk bounds match one there, and whose bytes
    // decompressed from there equal the new ones, is written as that layer's
    // frames verbatim instead of compressed again. `what` names the blob.
    // checkpoints (HashCheckpoint), when given, must be that blob's, as its
    // writer made them (ChunkedLayerInfo::checkpoints): the hashing of the
    // new blob's bytes that are the old blob's first bytes is then skipped
    // up to the last checkpoint before they differ (the blob digest's; the
    // diff ID is hashed whole).
    void reuse_from(int old_blob_fd, const ChunkedToc& old_toc, std::string what,
                    std::vector<HashCheckpoint> checkpoints = {});

    // As TarWriter::add / add_data. Throws naming the entry.
    void add(const TarEntry& entry, int content_fd = -1);
    // A regular file known to hold the bytes of the previous layer's file of
    // the same path (reuse_from): the same inode as in the snapshot that
    // layer was made from, snapshots being immutable (a file a COPY linked
    // from the step's previous result). Its chunks are that layer's frames,
    // written as they are from the mapped blob and decoded for the diff ID
    // (their zstd checksums and sizes checked), not compared with the file,
    // which is not read; its TOC digest is the previous layer's. false,
    // nothing written, when the previous layer cannot give every chunk
    // (not mapped, another size or cut): add() it then. Frames that turn
    // out damaged as they are decoded throw LinkedFramesDamaged, naming the
    // old blob and the file: the writer is then unusable (the builder makes
    // the step again, copying every file).
    bool add_linked(const TarEntry& entry);
    void add_data(const TarEntry& entry, std::string_view content);
    ChunkedLayerInfo finish();

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace strata::formats
