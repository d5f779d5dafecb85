// Tar layers. TarWriter produces a deterministic PAX tar stream (entries
// written in the order given; callers sort them), optionally compressed,
// hashing the uncompressed bytes (diff ID) and the compressed bytes (blob
// digest) in the same pass. TarReader streams entries out of a possibly
// compressed tar (compression detected), never holding a layer in memory, and
// also yields the diff ID and blob digest of what it read.
#pragma once

#include "formats/compression.hpp"
#include "formats/digest.hpp"
#include "util/fd.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace strata::formats {

enum class EntryType { file, dir, symlink, hardlink, chardev, blockdev, fifo };

struct TarEntry {
    std::string path; // as stored, without leading "./" or "/"; dirs without trailing '/'
    EntryType type = EntryType::file;
    std::uint32_t mode = 0644; // permission bits incl. setuid/setgid/sticky
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
    std::string uname;
    std::string gname;
    std::int64_t mtime_sec = 0;
    std::uint32_t mtime_nsec = 0;
    std::uint64_t size = 0; // regular files only
    std::string linkname;   // symlink target or hard-link target path
    std::uint32_t devmajor = 0;
    std::uint32_t devminor = 0;
    std::map<std::string, std::string> xattrs; // SCHILY.xattr.*
};

// What a written or read layer stream adds up to.
struct LayerDigests {
    Digest diff_id;          // sha256 of the uncompressed tar
    std::uint64_t diff_size; // uncompressed bytes
    Digest blob_digest;      // sha256 of the bytes as stored (== diff_id when none)
    std::uint64_t blob_size;
};

class TarWriter {
public:
    struct Options {
        Compression compression = Compression::zstd;
        int level = 0;   // codec default
        int threads = 0; // zstd workers; 0 = all cores
        // When set, mtimes later than this are clamped to it (SOURCE_DATE_EPOCH).
        std::optional<std::int64_t> clamp_mtime;
        // What out_fd writes to ("stdout", a blob's path), named by write
        // errors; empty: the fd's /proc/self/fd link.
        std::string out_name;
        // With zstd: a zstd:chunked layer (formats/zstd_chunked.hpp). Honoured
        // by snapshot's layer writers (write_upper_layer, write_diff_layer),
        // which then use ChunkedWriter; TarWriter itself refuses it.
        bool chunked = false;
        // zstd:chunked: start the writeback of what is written as it goes
        // (ChunkedWriter::Options::start_writeback).
        bool start_writeback = true;
    };
    // Writes the (compressed) stream to out_fd, which the writer does not own.
    TarWriter(int out_fd, Options opts);
    ~TarWriter();
    TarWriter(const TarWriter&) = delete;
    TarWriter& operator=(const TarWriter&) = delete;

    // Adds an entry; a regular file's content is read from content_fd
    // (entry.size bytes). Throws naming the entry on error.
    void add(const TarEntry& entry, int content_fd = -1);
    void add_data(const TarEntry& entry, std::string_view content);
    // Adds a regular file whose content comes from source(buf, size), which
    // returns how many bytes it put in buf (0 only at the end). Used to copy
    // entries from a TarReader without a temporary file.
    using ContentSource = std::function<std::size_t(void* buf, std::size_t size)>;
    void add_stream(const TarEntry& entry, const ContentSource& source);
    // Ends the archive and returns the digests.
    LayerDigests finish();

private:
    void add_stream(const TarEntry& entry, const ContentSource& source, bool has_source);
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

// The plain writer's tar bytes without compression or hashing, for writers
// that frame them themselves (zstd:chunked). header() emits the previous
// entry's padding and this entry's header(s); data() passes content bytes
// through unchanged (the sink sees the caller's pointer, in_content = true);
// finish() emits the last padding and the end-of-archive blocks. The same
// entries give exactly TarWriter's uncompressed bytes.
class TarRenderer {
public:
    using Sink = std::function<void(const void* data, std::size_t size, bool in_content)>;
    TarRenderer(Sink out, std::optional<std::int64_t> clamp_mtime);
    ~TarRenderer();
    TarRenderer(const TarRenderer&) = delete;
    TarRenderer& operator=(const TarRenderer&) = delete;
    void header(const TarEntry& entry);
    void data(const void* data, std::size_t size);
    void finish();

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

class TarReader {
public:
    // Reads from in_fd (not owned); name is used in error messages (a path or
    // a digest).
    TarReader(int in_fd, std::string name);
    ~TarReader();
    TarReader(const TarReader&) = delete;
    TarReader& operator=(const TarReader&) = delete;

    Compression compression() const;
    // The next entry, or nullopt at the end of the archive. Paths are cleaned
    // of a leading "./" and "/" but otherwise reported as stored, so that the
    // caller can reject "../" names.
    std::optional<TarEntry> next();
    // After next() returned a regular file: where its content starts in the
    // uncompressed tar stream, or nullopt for a sparse entry (its content is
    // not one run of bytes there). Lazy images read contents from there.
    std::optional<std::uint64_t> content_offset() const;
    // Reads the current entry's content; returns 0 at its end.
    std::size_t read(void* buf, std::size_t size);
    // Copies the current entry's content to fd.
    void copy_to(int fd);
    // After next() returned nullopt: drains the rest of the stream and returns
    // the digests of everything read.
    LayerDigests finish();

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace strata::formats
