// Tar layers over libarchive.
//
// Writing: libarchive produces a restricted-PAX stream (ustar headers, with a
// PAX extended header only for what ustar cannot hold: long names, large
// ids/sizes, xattrs as SCHILY.xattr.*). The bytes go through a pipeline of
// threads (see StreamStage): tar bytes -> diff-ID hasher ->
// compressor -> blob hasher -> out fd. zstd compresses on its own workers.
//
// What counts toward a layer's identity (and so is written): path, type,
// permission bits incl. setuid/setgid/sticky, uid/gid, uname/gname as given
// by the caller, mtime (clamped to SOURCE_DATE_EPOCH when asked), size,
// link targets, device numbers, xattrs. Never written: atime, ctime, inode
// numbers, the archive's own creation time. The same entries in the same
// order therefore always give the same bytes and digests.
//
// Reading: libarchive parses tar only; the bytes it sees come from our own
// read callback, which reads the fd, hashes the stored bytes (blob digest),
// decompresses (compression detected from the magic) and hashes the tar
// bytes (diff ID). Nothing holds more than a buffer of the layer.
#include "formats/tar.hpp"

#include "formats/json.hpp"
#include "formats/limits.hpp"
#include "formats/tar_check.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace strata::formats {

namespace {

constexpr std::size_t k_read_chunk = 1 << 20;
// Decompressed bytes per step of the reader.
constexpr std::size_t k_out_chunk = 256 << 10;

struct ArchiveEntryPtr {
    archive_entry* e = archive_entry_new();
    ~ArchiveEntryPtr() { archive_entry_free(e); }
};

std::string archive_err(archive* a) {
    const char* s = archive_error_string(a);
    return s != nullptr ? s : "unknown libarchive error";
}

mode_t type_bits(EntryType t) {
    switch (t) {
    case EntryType::file:
    case EntryType::hardlink:
        return AE_IFREG;
    case EntryType::dir:
        return AE_IFDIR;
    case EntryType::symlink:
        return AE_IFLNK;
    case EntryType::chardev:
        return AE_IFCHR;
    case EntryType::blockdev:
        return AE_IFBLK;
    case EntryType::fifo:
        return AE_IFIFO;
    }
    return AE_IFREG;
}

} // namespace

// ---------------------------------------------------------------- writer

// A buffer of a fixed capacity (the queue's chunk size) holding size bytes;
// the rest is uninitialised, so that bytes can be read or compressed into
// it in place.
struct Chunk {
    std::unique_ptr<char[]> data;
    std::size_t size = 0;
    bool empty() const noexcept { return size == 0; }
};

// A bounded queue of large byte chunks between two threads, with a free
// list so that chunk buffers are recycled (a fresh multi-MiB allocation per
// chunk costs page faults and page clearing every time).
class ChunkQueue {
public:
    ChunkQueue(std::size_t depth, std::size_t chunk) : m_depth(depth), m_chunk(chunk) {}

    // Blocks while the queue is full; false once the queue was aborted.
    bool push(Chunk c) {
        std::unique_lock lock(m_mu);
        m_space.wait(lock, [&] { return m_q.size() < m_depth || m_aborted; });
        if (m_aborted) {
            return false;
        }
        m_q.push_back(std::move(c));
        m_ready.notify_one();
        return true;
    }
    // Blocks while the queue is empty; false at its end (closed and
    // drained) or once it was aborted.
    bool pop(Chunk& out) {
        std::unique_lock lock(m_mu);
        m_ready.wait(lock, [&] { return !m_q.empty() || m_closed || m_aborted; });
        if (m_aborted || m_q.empty()) {
            return false;
        }
        out = std::move(m_q.front());
        m_q.pop_front();
        m_space.notify_one();
        return true;
    }
    bool aborted() {
        std::lock_guard lock(m_mu);
        return m_aborted;
    }
    void close() {
        std::lock_guard lock(m_mu);
        m_closed = true;
        m_ready.notify_all();
    }
    void abort() {
        std::lock_guard lock(m_mu);
        m_aborted = true;
        m_q.clear();
        m_ready.notify_all();
        m_space.notify_all();
    }
    Chunk take() {
        Chunk b;
        {
            std::lock_guard lock(m_mu);
            if (!m_free.empty()) {
                b = std::move(m_free.back());
                m_free.pop_back();
            }
        }
        if (!b.data) {
            b.data = std::make_unique_for_overwrite<char[]>(m_chunk);
        }
        b.size = 0;
        return b;
    }
    void give(Chunk b) {
        std::lock_guard lock(m_mu);
        if (m_free.size() < m_depth + 2) {
            m_free.push_back(std::move(b));
        }
    }

private:
    std::size_t m_depth;
    std::size_t m_chunk;
    std::mutex m_mu;
    std::condition_variable m_ready;
    std::condition_variable m_space;
    std::deque<Chunk> m_q;
    std::vector<Chunk> m_free;
    bool m_closed = false;
    bool m_aborted = false;
};

// The stream stage of the writer, a pipeline of three threads joined by
// bounded queues of 2 MiB chunks:
//   calling thread: walks, reads files, builds headers   -> tar chunks
//   codec thread:   diff-ID hash, compressor input (zstd's own workers
//                   compress; gzip blocks deflate on their own threads)
//                   -> compressed chunks
//   output thread:  blob-digest hash, write(2) to out_fd
// so that neither SHA-256 pass nor the output write sits on the thread that
// reads the files. Uncompressed, the codec thread writes the output itself
// (the blob digest is the diff ID). The bytes, and so both digests, do not
// depend on the chunking or the number of threads.
class StreamStage {
public:
    StreamStage(int out_fd, const TarWriter::Options& opts)
        : m_out_fd(out_fd), m_out_name(opts.out_name), m_in(k_queue, k_chunk),
          m_out(k_queue, k_chunk) {
        m_plain = opts.compression == Compression::none;
        m_compressor = Compressor::create(
            opts.compression, [this](const void* d, std::size_t n) { emit(d, n); }, opts.level,
            opts.threads);
        m_cur = m_in.take();
        if (m_plain) {
            m_plain_buf.reserve(k_chunk);
        } else {
            m_out_cur = m_out.take();
            // zstd compresses straight into the output chunks.
            m_compressor->set_output_area(
                Compressor::OutputArea{[this] {
                                           return std::pair{m_out_cur.data.get() + m_out_cur.size,
                                                            k_chunk - m_out_cur.size};
                                       },
                                       [this](std::size_t n) { commit_output(n); }});
            m_output_thread = std::thread([this] { run_output(); });
        }
        m_codec_thread = std::thread([this] { run_codec(); });
    }
    ~StreamStage() {
        m_in.abort();
        m_out.abort();
        join();
    }

    // Calling thread: free space at the end of the current chunk (never
    // empty), to read file contents into in place: write() of memory that
    // starts there then only counts it.
    std::pair<char*, std::size_t> room() noexcept {
        return {m_cur.data.get() + m_cur.size, k_chunk - m_cur.size};
    }

    // Calling thread: takes tar bytes. Throws what a stage thread threw.
    void write(const void* data, std::size_t size) {
        const char* p = static_cast<const char*>(data);
        if (p == m_cur.data.get() + m_cur.size) {
            if (size > k_chunk - m_cur.size) {
                throw Error("tar writer: wrote past the room of its chunk");
            }
            m_cur.size += size;
            if (m_cur.size == k_chunk) {
                push_input();
            }
            return;
        }
        while (size > 0) {
            std::size_t n = std::min(size, k_chunk - m_cur.size);
            std::memcpy(m_cur.data.get() + m_cur.size, p, n);
            m_cur.size += n;
            p += n;
            size -= n;
            if (m_cur.size == k_chunk) {
                push_input();
            }
        }
    }

    LayerDigests finish() {
        if (!m_cur.empty() && !m_in.push(std::move(m_cur))) {
            rethrow();
        }
        m_in.close();
        join();
        if (m_error) {
            std::rethrow_exception(m_error);
        }
        Digest diff = m_diff_hasher.finish();
        Digest blob = m_plain ? diff : m_blob_hasher.finish();
        return LayerDigests{diff, m_diff_size, blob, m_blob_size};
    }

private:
    static constexpr std::size_t k_chunk = 256 << 10;
    static constexpr std::size_t k_queue = 16;

    // Thrown inside the codec thread when the output thread has stopped.
    struct Stopped {};

    void push_input() {
        if (!m_in.push(std::move(m_cur))) {
            rethrow();
        }
        m_cur = m_in.take();
    }

    [[noreturn]] void rethrow() {
        join();
        if (m_error) {
            std::rethrow_exception(m_error);
        }
        throw Error("tar writer: the output stage stopped");
    }

    void join() {
        if (m_codec_thread.joinable()) {
            m_codec_thread.join();
        }
        if (m_output_thread.joinable()) {
            m_output_thread.join();
        }
    }

    void fail(std::exception_ptr e) {
        {
            std::lock_guard lock(m_error_mu);
            if (!m_error) {
                m_error = std::move(e);
            }
        }
        m_in.abort();
        m_out.abort();
    }

    void run_codec() noexcept {
        try {
            Chunk chunk;
            while (m_in.pop(chunk)) {
                m_diff_hasher.update(chunk.data.get(), chunk.size);
                m_diff_size += chunk.size;
                m_compressor->write(chunk.data.get(), chunk.size);
                m_in.give(std::move(chunk));
            }
            if (m_in.aborted()) {
                return; // the writer is being destroyed unfinished, or failed
            }
            m_compressor->finish();
            if (m_plain) {
                flush_plain();
            } else {
                if (!m_out_cur.empty() && !m_out.push(std::move(m_out_cur))) {
                    return;
                }
                m_out.close();
            }
        } catch (const Stopped&) {
            // The output thread failed and recorded why.
        } catch (...) {
            fail(std::current_exception());
        }
    }

    void run_output() noexcept {
        try {
            Chunk chunk;
            while (m_out.pop(chunk)) {
                m_blob_hasher.update(chunk.data.get(), chunk.size);
                fs::write_all(m_out_fd, m_out_name, chunk.data.get(), chunk.size);
                m_out.give(std::move(chunk));
            }
        } catch (...) {
            fail(std::current_exception());
        }
    }

    // Codec thread: compressed (or, uncompressed, tar) bytes.
    void emit(const void* d, std::size_t n) {
        const char* p = static_cast<const char*>(d);
        if (m_plain) {
            m_blob_size += n;
            // Large pieces (whole chunks) go straight out, small ones are
            // gathered.
            if (m_plain_buf.size() + n > k_chunk || (n >= k_chunk / 8 && !m_plain_buf.empty())) {
                flush_plain();
            }
            if (n >= k_chunk / 8) {
                fs::write_all(m_out_fd, m_out_name, p, n);
                return;
            }
            m_plain_buf.insert(m_plain_buf.end(), p, p + n);
            return;
        }
        while (n > 0) {
            std::size_t k = std::min(n, k_chunk - m_out_cur.size);
            std::memcpy(m_out_cur.data.get() + m_out_cur.size, p, k);
            p += k;
            n -= k;
            commit_output(k);
        }
    }

    // Codec thread: the first n free bytes of the output chunk are output.
    void commit_output(std::size_t n) {
        m_blob_size += n;
        m_out_cur.size += n;
        if (m_out_cur.size == k_chunk) {
            if (!m_out.push(std::move(m_out_cur))) {
                throw Stopped{};
            }
            m_out_cur = m_out.take();
        }
    }

    void flush_plain() {
        if (!m_plain_buf.empty()) {
            fs::write_all(m_out_fd, m_out_name, m_plain_buf.data(), m_plain_buf.size());
            m_plain_buf.clear();
        }
    }

    int m_out_fd;
    std::string m_out_name;
    bool m_plain = false;
    std::unique_ptr<Compressor> m_compressor;
    ChunkQueue m_in;
    ChunkQueue m_out;
    Chunk m_cur;     // calling thread
    Chunk m_out_cur; // codec thread
    std::vector<char> m_plain_buf;
    DigestHasher m_diff_hasher; // codec thread
    DigestHasher m_blob_hasher; // output thread
    std::uint64_t m_diff_size = 0;
    std::uint64_t m_blob_size = 0;
    std::mutex m_error_mu;
    std::exception_ptr m_error;
    std::thread m_codec_thread;
    std::thread m_output_thread;
};

struct TarWriter::Impl {
    Options opts;
    archive* a = nullptr;
    std::unique_ptr<StreamStage> stage;
    std::exception_ptr error; // an exception caught inside a libarchive callback
    bool finished = false;

    // libarchive's write callback: never lets an exception through.
    static la_ssize_t write_cb(archive*, void* self, const void* data, size_t size) {
        auto* impl = static_cast<Impl*>(self);
        try {
            impl->stage->write(data, size);
            return static_cast<la_ssize_t>(size);
        } catch (...) {
            impl->error = std::current_exception();
            return -1;
        }
    }

    [[noreturn]] void fail(const std::string& what) {
        if (error) {
            std::rethrow_exception(error);
        }
        throw Error(what + ": " + archive_err(a));
    }
};

TarWriter::TarWriter(int out_fd, Options opts) : m_impl(std::make_unique<Impl>()) {
    if (opts.chunked) {
        throw Error("tar writer: zstd:chunked layers are written by ChunkedWriter");
    }
    m_impl->opts = opts;
    Impl* impl = m_impl.get();
    impl->stage = std::make_unique<StreamStage>(out_fd, opts);
    impl->a = archive_write_new();
    if (impl->a == nullptr) {
        throw Error("libarchive: out of memory");
    }
    if (archive_write_set_format_pax_restricted(impl->a) != ARCHIVE_OK ||
        archive_write_set_format_option(impl->a, "pax", "xattrheader", "SCHILY") != ARCHIVE_OK ||
        // No blocking: the stream ends with the two zero blocks, as Go's
        // archive/tar (Docker, BuildKit) writes it.
        archive_write_set_bytes_per_block(impl->a, 0) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(impl->a, 1) != ARCHIVE_OK) {
        std::string msg = archive_err(impl->a);
        archive_write_free(impl->a);
        throw Error("libarchive: cannot set up the tar writer: " + msg);
    }
    if (archive_write_open(impl->a, impl, nullptr, &Impl::write_cb, nullptr) != ARCHIVE_OK) {
        std::string msg = archive_err(impl->a);
        archive_write_free(impl->a);
        throw Error("libarchive: cannot open the tar writer: " + msg);
    }
}

TarWriter::~TarWriter() {
    if (m_impl && m_impl->a != nullptr) {
        // Not finished: discard without writing the end of the archive.
        archive_write_fail(m_impl->a);
        archive_write_free(m_impl->a);
    }
}

namespace {

void fill_entry(archive_entry* e, const TarEntry& t, const std::optional<std::int64_t>& clamp) {
    archive_entry_set_pathname(e, t.path.c_str());
    archive_entry_set_filetype(e, type_bits(t.type));
    archive_entry_set_perm(e, t.mode & 07777);
    archive_entry_set_uid(e, t.uid);
    archive_entry_set_gid(e, t.gid);
    if (!t.uname.empty()) {
        archive_entry_set_uname(e, t.uname.c_str());
    }
    if (!t.gname.empty()) {
        archive_entry_set_gname(e, t.gname.c_str());
    }
    std::int64_t sec = t.mtime_sec;
    long nsec = static_cast<long>(t.mtime_nsec);
    if (clamp && (sec > *clamp || (sec == *clamp && nsec > 0))) {
        sec = *clamp;
        nsec = 0;
    }
    archive_entry_set_mtime(e, static_cast<time_t>(sec), nsec);
    switch (t.type) {
    case EntryType::file:
        archive_entry_set_size(e, static_cast<la_int64_t>(t.size));
        break;
    case EntryType::hardlink:
        archive_entry_set_hardlink(e, t.linkname.c_str());
        archive_entry_set_size(e, 0);
        break;
    case EntryType::symlink:
        archive_entry_set_symlink(e, t.linkname.c_str());
        break;
    case EntryType::chardev:
    case EntryType::blockdev:
        archive_entry_set_rdevmajor(e, t.devmajor);
        archive_entry_set_rdevminor(e, t.devminor);
        break;
    case EntryType::dir:
    case EntryType::fifo:
        break;
    }
    for (const auto& [name, value] : t.xattrs) {
        archive_entry_xattr_add_entry(e, name.c_str(), value.data(), value.size());
    }
}

} // namespace

void TarWriter::add(const TarEntry& entry, int content_fd) {
    add_stream(
        entry,
        [&](void* buf, std::size_t size) -> std::size_t {
            while (true) {
                ssize_t n = ::read(content_fd, buf, size);
                if (n < 0) {
                    if (errno == EINTR) {
                        continue;
                    }
                    throw SysError("read", entry.path, errno);
                }
                return static_cast<std::size_t>(n);
            }
        },
        content_fd >= 0);
}

void TarWriter::add_stream(const TarEntry& entry, const ContentSource& source) {
    add_stream(entry, source, true);
}

void TarWriter::add_stream(const TarEntry& entry, const ContentSource& source, bool has_source) {
    Impl& impl = *m_impl;
    if (impl.finished) {
        throw Error("tar writer: add after finish");
    }
    if (entry.path.empty()) {
        throw Error("tar writer: an entry with an empty path");
    }
    ArchiveEntryPtr ep;
    fill_entry(ep.e, entry, impl.opts.clamp_mtime);
    int r = archive_write_header(impl.a, ep.e);
    if (r < ARCHIVE_WARN) {
        impl.fail("writing tar entry " + entry.path);
    }
    if (entry.type != EntryType::file || entry.size == 0) {
        return;
    }
    if (!has_source) {
        throw Error("writing tar entry " + entry.path + ": no content given");
    }
    // The contents are read straight into the stream's chunk: libarchive
    // passes data through to write_cb unchanged (no blocking, no filters),
    // and the stage takes memory at its own room without a copy.
    std::uint64_t left = entry.size;
    while (left > 0) {
        auto [room, room_size] = impl.stage->room();
        std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left, room_size));
        std::size_t n = source(room, want);
        if (n == 0) {
            throw Error("writing tar entry " + entry.path + ": file shrank while being read (" +
                        std::to_string(entry.size - left) + " of " + std::to_string(entry.size) +
                        " bytes)");
        }
        la_ssize_t w = archive_write_data(impl.a, room, n);
        if (w < 0) {
            impl.fail("writing tar entry " + entry.path);
        }
        left -= n;
    }
}

void TarWriter::add_data(const TarEntry& entry, std::string_view content) {
    Impl& impl = *m_impl;
    TarEntry e = entry;
    if (e.type == EntryType::file) {
        e.size = content.size();
    }
    ArchiveEntryPtr ep;
    fill_entry(ep.e, e, impl.opts.clamp_mtime);
    if (archive_write_header(impl.a, ep.e) < ARCHIVE_WARN) {
        impl.fail("writing tar entry " + e.path);
    }
    if (e.type == EntryType::file && !content.empty()) {
        if (archive_write_data(impl.a, content.data(), content.size()) < 0) {
            impl.fail("writing tar entry " + e.path);
        }
    }
}

LayerDigests TarWriter::finish() {
    Impl& impl = *m_impl;
    if (impl.finished) {
        throw Error("tar writer: finish called twice");
    }
    impl.finished = true;
    if (archive_write_close(impl.a) != ARCHIVE_OK) {
        impl.fail("finishing the tar stream");
    }
    archive_write_free(impl.a);
    impl.a = nullptr;
    return impl.stage->finish();
}

// ---------------------------------------------------------------- renderer

struct TarRenderer::Impl {
    Sink out;
    std::optional<std::int64_t> clamp;
    archive* a = nullptr;
    bool in_content = false;
    std::exception_ptr error;

    static la_ssize_t write_cb(archive*, void* self, const void* data, size_t size) {
        auto* impl = static_cast<Impl*>(self);
        try {
            impl->out(data, size, impl->in_content);
            return static_cast<la_ssize_t>(size);
        } catch (...) {
            impl->error = std::current_exception();
            return -1;
        }
    }

    [[noreturn]] void fail(const std::string& what) {
        if (error) {
            std::rethrow_exception(error);
        }
        throw Error(what + ": " + archive_err(a));
    }
};

TarRenderer::TarRenderer(Sink out, std::optional<std::int64_t> clamp_mtime)
    : m_impl(std::make_unique<Impl>()) {
    Impl* impl = m_impl.get();
    impl->out = std::move(out);
    impl->clamp = clamp_mtime;
    impl->a = archive_write_new();
    if (impl->a == nullptr) {
        throw Error("libarchive: out of memory");
    }
    // The same settings as TarWriter: the bytes must be the same.
    if (archive_write_set_format_pax_restricted(impl->a) != ARCHIVE_OK ||
        archive_write_set_format_option(impl->a, "pax", "xattrheader", "SCHILY") != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(impl->a, 0) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(impl->a, 1) != ARCHIVE_OK ||
        archive_write_open(impl->a, impl, nullptr, &Impl::write_cb, nullptr) != ARCHIVE_OK) {
        std::string msg = archive_err(impl->a);
        archive_write_free(impl->a);
        impl->a = nullptr;
        throw Error("libarchive: cannot set up the tar renderer: " + msg);
    }
}

TarRenderer::~TarRenderer() {
    if (m_impl && m_impl->a != nullptr) {
        archive_write_fail(m_impl->a);
        archive_write_free(m_impl->a);
    }
}

void TarRenderer::header(const TarEntry& entry) {
    Impl& impl = *m_impl;
    if (impl.a == nullptr) {
        throw Error("tar renderer: header after finish");
    }
    if (entry.path.empty()) {
        throw Error("tar renderer: an entry with an empty path");
    }
    impl.in_content = false;
    ArchiveEntryPtr ep;
    fill_entry(ep.e, entry, impl.clamp);
    if (archive_write_header(impl.a, ep.e) < ARCHIVE_WARN) {
        impl.fail("writing tar entry " + entry.path);
    }
}

void TarRenderer::data(const void* data, std::size_t size) {
    Impl& impl = *m_impl;
    impl.in_content = true;
    la_ssize_t w = archive_write_data(impl.a, data, size);
    impl.in_content = false;
    if (w < 0 || static_cast<std::size_t>(w) != size) {
        impl.fail("writing tar content");
    }
}

void TarRenderer::finish() {
    Impl& impl = *m_impl;
    impl.in_content = false;
    if (archive_write_close(impl.a) != ARCHIVE_OK) {
        impl.fail("finishing the tar stream");
    }
    archive_write_free(impl.a);
    impl.a = nullptr;
}

// ---------------------------------------------------------------- reader
//
// TarReader refuses, naming the entry or the header's offset, what Go's
// archive/tar (Docker's reader) refuses (see tar_check.hpp), and besides: an
// entry named ".", "./" or "/" that is not a directory, device numbers the
// kernel cannot hold (major over 12 bits, minor over 20), ids above
// 4294967294, files over max_file_size() (limits.hpp).

namespace {
std::atomic<std::uint64_t> g_max_file_size{k_default_max_file_size};
} // namespace

void set_max_file_size(std::uint64_t bytes) {
    g_max_file_size = bytes;
}
std::uint64_t max_file_size() {
    return g_max_file_size;
}

struct TarReader::Impl {
    int in_fd;
    std::string name;
    archive* a = nullptr;
    Compression compression = Compression::none;
    std::unique_ptr<Decompressor> decompressor;
    DigestHasher diff_hasher;
    DigestHasher blob_hasher;
    std::uint64_t diff_size = 0;
    std::uint64_t blob_size = 0;
    std::vector<char> in_buf;
    std::size_t in_pos = 0; // in_buf[in_pos, in_len) is read but not decoded yet
    std::size_t in_len = 0; // (the first bytes are read while detecting the compression)
    bool in_eof = false;
    // Decompressed bytes handed to libarchive: at most k_out_chunk per pull(),
    // whatever the compression ratio (a decompression bomb costs time, not
    // memory). Uncompressed, out points into in_buf.
    std::unique_ptr<char[]> out_buf;
    const char* out = nullptr;
    std::size_t out_len = 0;
    bool eof = false;
    bool at_end = false; // next() returned nullopt
    bool finished = false;
    std::exception_ptr error;
    std::string current;                   // path of the current entry, for messages
    std::optional<std::uint64_t> content_at; // the current entry's content offset
    std::unique_ptr<TarHeaderCheck> check; // Go's strictness, before libarchive

    bool fill() {
        in_pos = 0;
        in_len = 0;
        for (;;) {
            ssize_t r = ::read(in_fd, in_buf.data(), in_buf.size());
            if (r < 0) {
                if (errno == EINTR) {
                    continue;
                }
                throw SysError("read", name, errno);
            }
            in_len = static_cast<std::size_t>(r);
            break;
        }
        if (in_len == 0) {
            in_eof = true;
            return false;
        }
        blob_hasher.update(in_buf.data(), in_len);
        blob_size += in_len;
        return true;
    }

    // Produces the next block of tar bytes into out/out_len (0 at the end).
    void pull() {
        out_len = 0;
        while (out_len == 0 && !eof) {
            if (in_pos == in_len && !in_eof) {
                fill();
            }
            if (compression == Compression::none) {
                if (in_pos == in_len) {
                    eof = true;
                    break;
                }
                out = in_buf.data() + in_pos;
                out_len = in_len - in_pos;
                in_pos = in_len;
                break;
            }
            // After the end of the input, the decoder is drained (it may
            // still hold output) before its end is checked.
            Decompressor::Step st = decompressor->decode(in_buf.data() + in_pos, in_len - in_pos,
                                                         out_buf.get(), k_out_chunk);
            in_pos += st.consumed;
            out = out_buf.get();
            out_len = st.produced;
            if (st.consumed == 0 && st.produced == 0) {
                if (in_pos < in_len) {
                    throw Error("corrupt " + std::string(to_string(compression)) +
                                " stream: the decoder made no progress");
                }
                if (in_eof) {
                    eof = true;
                    decompressor->finish();
                }
            }
        }
        if (out_len > 0) {
            diff_hasher.update(out, out_len);
            diff_size += out_len;
            check->feed(out, out_len);
        }
    }

    static la_ssize_t read_cb(archive*, void* self, const void** buffer) {
        auto* impl = static_cast<Impl*>(self);
        try {
            impl->pull();
            *buffer = impl->out;
            return static_cast<la_ssize_t>(impl->out_len);
        } catch (...) {
            impl->error = std::current_exception();
            return -1;
        }
    }

    [[noreturn]] void fail(const std::string& what) {
        std::string where = name + ": " + what;
        if (error) {
            try {
                std::rethrow_exception(error);
            } catch (const Error& e) {
                // A copy, so that error stays as the read callback left it
                // for any later call; a SysError keeps its op, path and errno.
                if (const auto* se = dynamic_cast<const SysError*>(&e)) {
                    SysError copy = *se;
                    copy.add_context(where);
                    throw copy;
                }
                throw Error(where + ": " + e.what());
            }
        }
        throw Error(where + ": " + archive_err(a));
    }
};

TarReader::TarReader(int in_fd, std::string name) : m_impl(std::make_unique<Impl>()) {
    Impl* impl = m_impl.get();
    impl->in_fd = in_fd;
    impl->name = std::move(name);
    impl->check = std::make_unique<TarHeaderCheck>(impl->name);
    impl->in_buf.resize(k_read_chunk);
    // Detect the compression from the first bytes.
    std::size_t got = fs::read_full(in_fd, impl->name, impl->in_buf.data(), 512);
    impl->in_len = got;
    impl->in_eof = got < 512;
    impl->blob_hasher.update(impl->in_buf.data(), got);
    impl->blob_size += got;
    impl->compression = detect_compression(impl->in_buf.data(), got);
    impl->decompressor = Decompressor::create(impl->compression);
    if (impl->compression != Compression::none) {
        impl->out_buf = std::make_unique<char[]>(k_out_chunk);
    }
    // An empty file is not a tar stream; libarchive reports it below.
    impl->a = archive_read_new();
    if (impl->a == nullptr) {
        throw Error("libarchive: out of memory");
    }
    archive_read_support_format_tar(impl->a);
    if (archive_read_open(impl->a, impl, nullptr, &Impl::read_cb, nullptr) != ARCHIVE_OK) {
        std::string msg;
        try {
            impl->fail("opening the tar stream");
        } catch (const Error& e) {
            msg = e.what();
        }
        archive_read_free(impl->a);
        impl->a = nullptr;
        throw Error(msg);
    }
}

TarReader::~TarReader() {
    if (m_impl && m_impl->a != nullptr) {
        archive_read_free(m_impl->a);
    }
}

Compression TarReader::compression() const {
    return m_impl->compression;
}

namespace {

std::string clean_entry_path(const char* raw) {
    std::string p = raw != nullptr ? raw : "";
    // Strip leading "/" and "./" (repeatedly), and trailing slashes.
    for (;;) {
        if (!p.empty() && p[0] == '/') {
            p.erase(0, 1);
        } else if (p.size() >= 2 && p[0] == '.' && p[1] == '/') {
            p.erase(0, 2);
        } else {
            break;
        }
    }
    while (p.size() > 1 && p.back() == '/') {
        p.pop_back();
    }
    if (p == ".") {
        p.clear();
    }
    return p;
}

} // namespace

std::optional<TarEntry> TarReader::next() {
    Impl& impl = *m_impl;
    if (impl.at_end) {
        return std::nullopt;
    }
    archive_entry* e = nullptr;
    int r = archive_read_next_header(impl.a, &e);
    if (r == ARCHIVE_EOF) {
        impl.at_end = true;
        return std::nullopt;
    }
    if (r < ARCHIVE_WARN) {
        impl.fail(impl.current.empty() ? std::string("reading the first tar header")
                                       : "reading the tar header after entry " + impl.current);
    }
    TarEntry t;
    const char* raw = archive_entry_pathname(e);
    t.path = clean_entry_path(raw);
    impl.current = raw != nullptr ? raw : "";
    try {
        impl.check->check_entry_start(
            static_cast<std::uint64_t>(archive_read_header_position(impl.a)));
    } catch (const Error&) {
        impl.at_end = true;
        throw;
    }
    std::string entry_name = quote_untrusted(impl.current);
    auto refuse = [&](const std::string& why) {
        throw FormatError(impl.name + ": tar entry " + entry_name + ": " + why);
    };
    mode_t ft = archive_entry_filetype(e);
    const char* hl = archive_entry_hardlink(e);
    if (hl != nullptr) {
        t.type = EntryType::hardlink;
        t.linkname = hl;
    } else {
        switch (ft) {
        case AE_IFREG:
            t.type = EntryType::file;
            break;
        case AE_IFDIR:
            t.type = EntryType::dir;
            break;
        case AE_IFLNK: {
            t.type = EntryType::symlink;
            const char* s = archive_entry_symlink(e);
            t.linkname = s != nullptr ? s : "";
            break;
        }
        case AE_IFCHR:
            t.type = EntryType::chardev;
            break;
        case AE_IFBLK:
            t.type = EntryType::blockdev;
            break;
        case AE_IFIFO:
            t.type = EntryType::fifo;
            break;
        default:
            refuse("unsupported entry type");
        }
    }
    t.mode = archive_entry_perm(e) & 07777;
    la_int64_t uid = archive_entry_uid(e);
    la_int64_t gid = archive_entry_gid(e);
    if (uid < 0 || gid < 0 || uid > 0xFFFFFFFELL || gid > 0xFFFFFFFELL) {
        refuse("uid/gid " + std::to_string(uid) + ":" + std::to_string(gid) +
               " out of range (0 to 4294967294)");
    }
    t.uid = static_cast<std::uint32_t>(uid);
    t.gid = static_cast<std::uint32_t>(gid);
    if (const char* u = archive_entry_uname(e)) {
        t.uname = u;
    }
    if (const char* g = archive_entry_gname(e)) {
        t.gname = g;
    }
    t.mtime_sec = archive_entry_mtime(e);
    t.mtime_nsec = static_cast<std::uint32_t>(archive_entry_mtime_nsec(e));
    if (t.type == EntryType::file) {
        la_int64_t sz = archive_entry_size(e);
        if (sz < 0) {
            refuse("negative size");
        }
        t.size = static_cast<std::uint64_t>(sz);
        if (t.size > max_file_size()) {
            refuse("a file of " + std::to_string(t.size) + " bytes" +
                   (archive_entry_sparse_count(e) > 0 ? " (sparse)" : "") + ", over the limit of " +
                   std::to_string(max_file_size()) +
                   " bytes (raise it with --max-file-size or STRATA_MAX_FILE_SIZE)");
        }
    }
    if (t.path.empty() && t.type != EntryType::dir) {
        refuse("names the root but is not a directory");
    }
    if (t.type == EntryType::chardev || t.type == EntryType::blockdev) {
        auto major = static_cast<std::uint64_t>(archive_entry_rdevmajor(e));
        auto minor = static_cast<std::uint64_t>(archive_entry_rdevminor(e));
        // The kernel's dev_t: 12 bits of major, 20 of minor (MINORBITS).
        if (major > 0xFFF || minor > 0xFFFFF) {
            refuse("device " + std::to_string(major) + "," + std::to_string(minor) +
                   " beyond what the kernel holds (major < 4096, minor < 1048576)");
        }
        t.devmajor = static_cast<std::uint32_t>(major);
        t.devminor = static_cast<std::uint32_t>(minor);
    }
    impl.content_at.reset();
    if (archive_entry_sparse_count(e) == 0) {
        // libarchive has consumed the entry's headers: its position in the
        // tar stream is where the content starts.
        impl.content_at = static_cast<std::uint64_t>(archive_filter_bytes(impl.a, 0));
    }
    archive_entry_xattr_reset(e);
    const char* xname = nullptr;
    const void* xval = nullptr;
    size_t xsize = 0;
    while (archive_entry_xattr_next(e, &xname, &xval, &xsize) == ARCHIVE_OK) {
        if (xname != nullptr) {
            t.xattrs[xname] = std::string(static_cast<const char*>(xval), xsize);
        }
    }
    return t;
}

std::optional<std::uint64_t> TarReader::content_offset() const {
    return m_impl->content_at;
}

std::size_t TarReader::read(void* buf, std::size_t size) {
    Impl& impl = *m_impl;
    la_ssize_t n = archive_read_data(impl.a, buf, size);
    if (n < 0) {
        impl.fail("reading the content of tar entry " + impl.current);
    }
    return static_cast<std::size_t>(n);
}

void TarReader::copy_to(int fd) {
    Impl& impl = *m_impl;
    const void* block = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    la_int64_t pos = 0;
    bool sparse = false;
    for (;;) {
        int r = archive_read_data_block(impl.a, &block, &size, &offset);
        if (r == ARCHIVE_EOF) {
            break;
        }
        if (r < ARCHIVE_WARN) {
            impl.fail("reading the content of tar entry " + impl.current);
        }
        if (offset != pos) {
            // A sparse entry: leave a hole.
            if (::lseek(fd, offset, SEEK_SET) < 0) {
                throw SysError("lseek", impl.current, errno);
            }
            pos = offset;
            sparse = true;
        }
        fs::write_all(fd, impl.current, block, size);
        pos += static_cast<la_int64_t>(size);
    }
    if (sparse) {
        // Nothing else to do: the caller sets the size from the header if needed.
        (void)sparse;
    }
}

LayerDigests TarReader::finish() {
    Impl& impl = *m_impl;
    if (impl.finished) {
        throw Error(impl.name + ": tar reader finished twice");
    }
    if (!impl.at_end) {
        throw Error(impl.name + ": tar reader finished before the end of the archive");
    }
    impl.finished = true;
    // libarchive stops at the end-of-archive blocks; hash whatever follows
    // (padding) so the digests cover the whole stream, and check the
    // compressed stream ends properly.
    try {
        while (!impl.eof) {
            impl.pull();
        }
    } catch (Error& e) {
        e.add_context(impl.name);
        throw;
    }
    return LayerDigests{impl.diff_hasher.finish(), impl.diff_size, impl.blob_hasher.finish(),
                        impl.blob_size};
}

} // namespace strata::formats
