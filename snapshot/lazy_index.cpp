#include "snapshot/lazy_index.hpp"

#include "formats/json.hpp"
#include "formats/limits.hpp"
#include "snapshot/layer_index.hpp"
#include "snapshot/lazy_toc.hpp"
#include "snapshot/partial_blob.hpp"
#include "snapshot/store.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/mapped_file.hpp"
#include "util/scope.hpp"
#include "util/sha256.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

namespace strata::snapshot {

namespace {

constexpr std::size_t k_window = 32768;
constexpr std::size_t k_in_chunk = 256 << 10;
constexpr std::uint64_t k_zstd_min_gap = 1ULL << 20;

std::size_t pread_some(int fd, const std::string& what, char* buf, std::size_t len,
                       std::uint64_t off) {
    for (;;) {
        ssize_t r = ::pread(fd, buf, len, static_cast<off_t>(off));
        if (r >= 0) {
            return static_cast<std::size_t>(r);
        }
        if (errno != EINTR) {
            throw SysError("pread", what, errno);
        }
    }
}

// The bytes of the uncompressed stream go from the decoding thread to the
// tar reader through a socket pair (send with MSG_NOSIGNAL: when the reader
// stops early, the writer gets EPIPE instead of a signal).
void send_all(int fd, const char* data, std::size_t n) {
    while (n > 0) {
        ssize_t r = ::send(fd, data, n, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw SysError("send", "the lazy index pass", errno);
        }
        data += r;
        n -= static_cast<std::size_t>(r);
    }
}

struct ZStream {
    z_stream s{};
    bool live = false;
    void init(int bits, const std::string& what) {
        end();
        s = z_stream{};
        if (inflateInit2(&s, bits) != Z_OK) {
            throw Error(what + ": inflateInit2 failed");
        }
        live = true;
    }
    void end() {
        if (live) {
            inflateEnd(&s);
            live = false;
        }
    }
    ~ZStream() { end(); }
};

struct DStream {
    ZSTD_DStream* d = ZSTD_createDStream();
    ~DStream() { ZSTD_freeDStream(d); }
};

// The decoding side of the index pass: reads the blob, hashes it, decodes
// it into sink, and records seek points.
void decode_blob(int blob_fd, const std::string& what, BlobIndex& idx, std::uint64_t span,
                 Sha256& blob_hash, const std::function<void(const char*, std::size_t)>& sink) {
    std::vector<char> in(k_in_chunk);
    std::uint64_t in_off = 0;
    auto fill = [&]() -> std::size_t {
        std::size_t n = pread_some(blob_fd, what, in.data(), in.size(), in_off);
        blob_hash.update(in.data(), n);
        return n;
    };
    std::size_t n = fill();
    idx.compression = formats::detect_compression(in.data(), n);
    if (idx.compression == formats::Compression::none) {
        while (n > 0) {
            sink(in.data(), n);
            in_off += n;
            n = fill();
        }
        idx.blob_size = in_off;
        return;
    }
    idx.points.push_back(SeekPoint{SeekPoint::Kind::start, 0, 0, 0, {}});
    std::uint64_t out_total = 0;
    if (idx.compression == formats::Compression::gzip) {
        std::vector<unsigned char> window(k_window);
        auto windows = std::make_shared<std::deque<std::string>>(); // stable addresses
        idx.storage = windows;
        ZStream z;
        z.init(47, what); // gzip header, auto-detected
        z.s.avail_out = 0;
        bool ended = false;
        while (n > 0) {
            z.s.next_in = reinterpret_cast<unsigned char*>(in.data());
            z.s.avail_in = static_cast<uInt>(n);
            while (z.s.avail_in > 0) {
                if (ended) {
                    // Another gzip member follows.
                    if (inflateReset(&z.s) != Z_OK) {
                        throw Error(what + ": inflateReset failed");
                    }
                    ended = false;
                    std::uint64_t at =
                        in_off + (z.s.next_in - reinterpret_cast<unsigned char*>(in.data()));
                    if (out_total - idx.points.back().out >= span) {
                        idx.points.push_back(
                            SeekPoint{SeekPoint::Kind::start, 0, out_total, at, {}});
                    }
                }
                if (z.s.avail_out == 0) {
                    z.s.avail_out = k_window;
                    z.s.next_out = window.data();
                }
                unsigned char* before = z.s.next_out;
                int r = inflate(&z.s, Z_BLOCK);
                if (r == Z_NEED_DICT || r == Z_DATA_ERROR || r == Z_MEM_ERROR) {
                    throw formats::FormatError(what + ": corrupt gzip stream: " +
                                               (z.s.msg != nullptr ? z.s.msg : "inflate error"));
                }
                std::size_t produced = static_cast<std::size_t>(z.s.next_out - before);
                if (produced > 0) {
                    sink(reinterpret_cast<const char*>(before), produced);
                    out_total += produced;
                }
                if (r == Z_STREAM_END) {
                    ended = true;
                    continue;
                }
                if (r == Z_BUF_ERROR && produced == 0 && z.s.avail_in > 0 && z.s.avail_out > 0) {
                    throw formats::FormatError(what + ": corrupt gzip stream: no progress");
                }
                if ((z.s.data_type & 128) != 0 && (z.s.data_type & 64) == 0 &&
                    out_total - idx.points.back().out >= span) {
                    // A block boundary: a checkpoint as zran.c makes it.
                    SeekPoint p;
                    p.kind = SeekPoint::Kind::inflate;
                    p.bits = static_cast<std::uint8_t>(z.s.data_type & 7);
                    p.out = out_total;
                    p.in = in_off + (z.s.next_in - reinterpret_cast<unsigned char*>(in.data()));
                    std::string lin(k_window, '\0');
                    std::size_t left = z.s.avail_out;
                    if (left > 0) {
                        std::memcpy(lin.data(), window.data() + k_window - left, left);
                    }
                    if (left < k_window) {
                        std::memcpy(lin.data() + left, window.data(), k_window - left);
                    }
                    std::size_t valid =
                        static_cast<std::size_t>(std::min<std::uint64_t>(out_total, k_window));
                    p.window = windows->emplace_back(lin.substr(k_window - valid));
                    idx.points.push_back(std::move(p));
                }
            }
            in_off += n;
            n = fill();
        }
        if (!ended) {
            throw formats::FormatError(what + ": truncated gzip stream");
        }
    } else {
        DStream ds;
        std::vector<char> out(ZSTD_DStreamOutSize());
        ZSTD_initDStream(ds.d);
        std::uint64_t biggest = 0;
        std::size_t last = 1;
        while (n > 0) {
            ZSTD_inBuffer ib{in.data(), n, 0};
            while (ib.pos < ib.size) {
                ZSTD_outBuffer ob{out.data(), out.size(), 0};
                std::size_t r = ZSTD_decompressStream(ds.d, &ob, &ib);
                if (ZSTD_isError(r)) {
                    throw formats::FormatError(what +
                                               ": corrupt zstd stream: " + ZSTD_getErrorName(r));
                }
                if (ob.pos > 0) {
                    sink(out.data(), ob.pos);
                    out_total += ob.pos;
                }
                last = r;
                if (r == 0) {
                    // A frame ended here (fully flushed).
                    std::uint64_t at = in_off + ib.pos;
                    biggest = std::max(biggest, out_total - idx.points.back().out);
                    if (out_total - idx.points.back().out >= k_zstd_min_gap) {
                        idx.points.push_back(
                            SeekPoint{SeekPoint::Kind::start, 0, out_total, at, {}});
                    }
                }
            }
            in_off += n;
            n = fill();
        }
        // The frame in progress may still hold output.
        while (last != 0) {
            ZSTD_inBuffer ib{nullptr, 0, 0};
            ZSTD_outBuffer ob{out.data(), out.size(), 0};
            std::size_t r = ZSTD_decompressStream(ds.d, &ob, &ib);
            if (ZSTD_isError(r)) {
                throw formats::FormatError(what + ": corrupt zstd stream: " + ZSTD_getErrorName(r));
            }
            last = r;
            if (ob.pos == 0) {
                break;
            }
            sink(out.data(), ob.pos);
            out_total += ob.pos;
        }
        if (last != 0) {
            throw formats::FormatError(what + ": truncated zstd stream");
        }
        biggest = std::max(biggest, out_total - idx.points.back().out);
        idx.seekable = biggest <= BlobIndex::k_max_zstd_gap;
    }
    idx.blob_size = in_off;
}

// ---------------------------------------------------------------- file format

class Writer {
public:
    void u8(std::uint8_t v) { m_out.push_back(static_cast<char>(v)); }
    void u32(std::uint32_t v) { m_out.append(reinterpret_cast<const char*>(&v), 4); }
    void u64(std::uint64_t v) { m_out.append(reinterpret_cast<const char*>(&v), 8); }
    void str(std::string_view s) {
        u32(static_cast<std::uint32_t>(s.size()));
        m_out.append(s);
    }
    std::string take() { return std::move(m_out); }

private:
    std::string m_out;
};

class Reader {
public:
    Reader(std::string_view data, const std::string& path) : m_data(data), m_path(path) {}
    std::uint8_t u8() { return static_cast<std::uint8_t>(take(1)[0]); }
    std::uint32_t u32() {
        std::uint32_t v;
        std::memcpy(&v, take(4).data(), 4);
        return v;
    }
    std::uint64_t u64() {
        std::uint64_t v;
        std::memcpy(&v, take(8).data(), 8);
        return v;
    }
    std::string str() { return std::string(take(u32())); }
    std::string_view view() { return take(u32()); }
    std::size_t left() const { return m_data.size() - m_pos; }
    [[noreturn]] void fail(const std::string& why) const {
        throw formats::FormatError("lazy index " + m_path + ": " + why + " (at byte " +
                                   std::to_string(m_pos) + ")");
    }

private:
    std::string_view take(std::size_t n) {
        if (n > left()) {
            fail("truncated");
        }
        auto v = m_data.substr(m_pos, n);
        m_pos += n;
        return v;
    }
    std::string_view m_data;
    const std::string& m_path;
    std::size_t m_pos = 0;
};

constexpr std::string_view k_magic = "STRATA-LAZY-INDEX\n";

} // namespace

const SeekPoint& BlobIndex::point_for(std::uint64_t out) const {
    auto it = std::upper_bound(points.begin(), points.end(), out,
                               [](std::uint64_t o, const SeekPoint& p) { return o < p.out; });
    if (it == points.begin()) {
        throw Error("lazy index of " + blob.str() + ": no seek point before offset " +
                    std::to_string(out));
    }
    return *(it - 1);
}

BlobIndex build_blob_index(int blob_fd, const formats::Digest& blob, std::uint64_t span) {
    const std::string what = "layer " + blob.str();
    BlobIndex idx;
    idx.blob = blob;
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        throw_errno("socketpair", "the lazy index pass");
    }
    UniqueFd rd(sv[0]);
    UniqueFd wr(sv[1]);
    Sha256 blob_hash;
    std::exception_ptr decode_error;
    std::thread decoder([&] {
        try {
            decode_blob(blob_fd, what, idx, span, blob_hash,
                        [&](const char* d, std::size_t n) { send_all(wr.get(), d, n); });
        } catch (...) {
            decode_error = std::current_exception();
        }
        ::shutdown(wr.get(), SHUT_WR);
    });
    std::exception_ptr read_error;
    std::vector<IndexedEntry> entries;
    formats::LayerDigests digests{formats::Digest::of({}), 0, formats::Digest::of({}), 0};
    try {
        formats::TarReader reader(rd.get(), what);
        // The checks the unpack path makes on names, links and whiteouts.
        LayerIndex check;
        check.begin_layer(blob.str());
        std::vector<char> skip(128 << 10);
        while (auto e = reader.next()) {
            check.add_entry(*e);
            IndexedEntry ie{*e, 0};
            if (e->type == formats::EntryType::file) {
                auto at = reader.content_offset();
                if (!at) {
                    // A sparse file: the layer's contents come from its snapshot.
                    idx.seekable = false;
                }
                ie.content = at.value_or(0);
            }
            while (reader.read(skip.data(), skip.size()) > 0) {
            }
            entries.push_back(std::move(ie));
        }
        digests = reader.finish();
        check.end_layer();
    } catch (...) {
        read_error = std::current_exception();
    }
    ::shutdown(rd.get(), SHUT_RDWR);
    decoder.join();
    if (decode_error) {
        std::rethrow_exception(decode_error);
    }
    if (read_error) {
        std::rethrow_exception(read_error);
    }
    formats::Digest got = formats::Digest::from_hasher(blob_hash);
    if (got != blob) {
        throw CorruptLayer(what + ": the blob's content hashes to " + got.str());
    }
    idx.diff_id = digests.diff_id;
    idx.diff_size = digests.diff_size;
    idx.entries = std::move(entries);
    if (idx.compression == formats::Compression::none) {
        idx.diff_size = idx.blob_size;
    }
    return idx;
}

std::string serialize_blob_index(const BlobIndex& idx) {
    if (idx.toc) {
        // Its chunks have no place in the file: a TOC index is made again
        // from the TOC at each load.
        throw Error("lazy index of " + idx.blob.str() + ": an index made from a TOC is not kept");
    }
    Writer w;
    w.u32(BlobIndex::k_version);
    w.str(idx.blob.str());
    w.u64(idx.blob_size);
    w.u8(static_cast<std::uint8_t>(idx.compression));
    w.u8(idx.seekable ? 1 : 0);
    w.str(idx.diff_id.str());
    w.u64(idx.diff_size);
    w.u32(static_cast<std::uint32_t>(idx.points.size()));
    for (const auto& p : idx.points) {
        w.u8(static_cast<std::uint8_t>(p.kind));
        w.u8(p.bits);
        w.u64(p.out);
        w.u64(p.in);
        w.str(p.window);
    }
    w.u32(static_cast<std::uint32_t>(idx.entries.size()));
    for (const auto& ie : idx.entries) {
        const auto& e = ie.entry;
        w.str(e.path);
        w.u8(static_cast<std::uint8_t>(e.type));
        w.u32(e.mode);
        w.u32(e.uid);
        w.u32(e.gid);
        w.str(e.uname);
        w.str(e.gname);
        w.u64(static_cast<std::uint64_t>(e.mtime_sec));
        w.u32(e.mtime_nsec);
        w.u64(e.size);
        w.str(e.linkname);
        w.u32(e.devmajor);
        w.u32(e.devminor);
        w.u32(static_cast<std::uint32_t>(e.xattrs.size()));
        for (const auto& [k, v] : e.xattrs) {
            w.str(k);
            w.str(v);
        }
        w.u64(ie.content);
    }
    std::string body = w.take();
    std::string out(k_magic);
    out += body;
    Sha256 h;
    h.update(out);
    auto sum = h.finish();
    out.append(reinterpret_cast<const char*>(sum.data()), sum.size());
    return out;
}

BlobIndex parse_blob_index(std::string_view data, const formats::Digest& blob,
                           std::uint64_t blob_size, const std::string& path,
                           std::shared_ptr<const void> keep) {
    if (!keep) {
        auto copy = std::make_shared<const std::string>(data);
        data = *copy;
        keep = std::move(copy);
    }
    if (data.size() < k_magic.size() + 32 || data.substr(0, k_magic.size()) != k_magic) {
        throw formats::FormatError("lazy index " + path + ": not a lazy index");
    }
    std::string_view body = data.substr(0, data.size() - 32);
    Sha256 h;
    h.update(body);
    auto sum = h.finish();
    if (std::memcmp(sum.data(), data.data() + body.size(), 32) != 0) {
        throw formats::FormatError("lazy index " + path + ": checksum mismatch (damaged)");
    }
    Reader r(body.substr(k_magic.size()), path);
    if (auto v = r.u32(); v != BlobIndex::k_version) {
        r.fail("version " + std::to_string(v) + ", expected " +
               std::to_string(BlobIndex::k_version));
    }
    BlobIndex idx;
    idx.storage = keep; // the windows are views into it
    idx.blob = formats::Digest::parse(r.str());
    if (idx.blob != blob) {
        r.fail("describes " + idx.blob.str() + ", not " + blob.str());
    }
    idx.blob_size = r.u64();
    if (idx.blob_size != blob_size) {
        r.fail("describes a blob of " + std::to_string(idx.blob_size) + " bytes, not " +
               std::to_string(blob_size));
    }
    auto c = r.u8();
    if (c > static_cast<std::uint8_t>(formats::Compression::zstd)) {
        r.fail("unknown compression " + std::to_string(c));
    }
    idx.compression = static_cast<formats::Compression>(c);
    idx.seekable = r.u8() != 0;
    idx.diff_id = formats::Digest::parse(r.str());
    idx.diff_size = r.u64();
    std::uint32_t np = r.u32();
    if (np > r.left() / 22) {
        r.fail("absurd seek point count");
    }
    idx.points.reserve(np);
    for (std::uint32_t i = 0; i < np; ++i) {
        SeekPoint p;
        auto kind = r.u8();
        if (kind > 1) {
            r.fail("unknown seek point kind");
        }
        p.kind = static_cast<SeekPoint::Kind>(kind);
        p.bits = r.u8();
        p.out = r.u64();
        p.in = r.u64();
        p.window = r.view();
        if (p.bits > 7 || p.window.size() > k_window || p.out > idx.diff_size ||
            p.in > idx.blob_size || (p.kind == SeekPoint::Kind::inflate && p.in == 0) ||
            (!idx.points.empty() &&
             (p.out <= idx.points.back().out || p.in <= idx.points.back().in))) {
            r.fail("seek point " + std::to_string(i) + " out of bounds");
        }
        idx.points.push_back(std::move(p));
    }
    if (idx.compression != formats::Compression::none &&
        (idx.points.empty() || idx.points[0].out != 0 || idx.points[0].in != 0)) {
        r.fail("no seek point at the start");
    }
    std::uint32_t ne = r.u32();
    if (ne > r.left() / 60) {
        r.fail("absurd entry count");
    }
    idx.entries.reserve(ne);
    for (std::uint32_t i = 0; i < ne; ++i) {
        IndexedEntry ie;
        auto& e = ie.entry;
        e.path = r.str();
        auto t = r.u8();
        if (t > static_cast<std::uint8_t>(formats::EntryType::fifo)) {
            r.fail("unknown entry type");
        }
        e.type = static_cast<formats::EntryType>(t);
        e.mode = r.u32();
        e.uid = r.u32();
        e.gid = r.u32();
        e.uname = r.str();
        e.gname = r.str();
        e.mtime_sec = static_cast<std::int64_t>(r.u64());
        e.mtime_nsec = r.u32();
        e.size = r.u64();
        e.linkname = r.str();
        e.devmajor = r.u32();
        e.devminor = r.u32();
        std::uint32_t nx = r.u32();
        if (nx > r.left() / 8) {
            r.fail("absurd xattr count");
        }
        for (std::uint32_t x = 0; x < nx; ++x) {
            std::string k = r.str();
            e.xattrs[k] = r.str();
        }
        ie.content = r.u64();
        if (e.type == formats::EntryType::file &&
            (e.size > formats::max_file_size() || ie.content > idx.diff_size ||
             e.size > idx.diff_size - ie.content)) {
            r.fail("entry " + std::to_string(i) + " (" + formats::quote_untrusted(e.path) +
                   ") content out of bounds");
        }
        idx.entries.push_back(std::move(ie));
    }
    if (r.left() != 0) {
        r.fail("trailing bytes");
    }
    return idx;
}

std::string blob_index_path(const Store& store, const formats::Digest& blob) {
    return store.root() + "/lazy/" + std::string(blob.hex()) + ".idx";
}

BlobIndex load_blob_index(const Store& store, const formats::Digest& blob) {
    std::string path = blob_index_path(store, blob);
    UniqueFd fd = store.open_blob(blob);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        throw_errno("fstat", store.blob_path(blob));
    }
    if (fs::exists(path)) {
        try {
            // Mapped with its pages populated in one call: no copy, and no
            // page fault per page (costly in this project's VMs) while it
            // is checked and parsed.
            auto mapped = std::make_shared<MappedFile>();
            UniqueFd ifd = fs::open(path, O_RDONLY);
            struct stat ist = fs::fstat(ifd.get());
            if (ist.st_size <= 0 || static_cast<std::uint64_t>(ist.st_size) > (1ULL << 32)) {
                throw formats::FormatError("lazy index " + path + ": size " +
                                           std::to_string(ist.st_size) + " out of bounds");
            }
            if (!mapped->map(ifd.get(), true)) {
                throw_errno("mmap", path);
            }
            return parse_blob_index(mapped->bytes(), blob, static_cast<std::uint64_t>(st.st_size),
                                    path, mapped);
        } catch (const Error& e) {
            STRATA_LOG_WARN("{}; rebuilding it", e.what());
        }
    }
    // A checkpoint every 4 MiB of output: an index of under 1% of the
    // uncompressed size (the 32 KiB windows), loaded at every mount in a few
    // ms; a file read out of tar order decodes 2 MiB before its first byte
    // on average (1 MiB made the index 4x larger and mounts 10x slower).
    BlobIndex idx = build_blob_index(fd.get(), blob, 4ULL << 20);
    fs::mkdirs(store.root() + "/lazy", 0700);
    fs::write_file_atomic(path, serialize_blob_index(idx), 0600);
    return idx;
}

// ---------------------------------------------------------------- reading

struct ContentReader::Decoder {
    int fd;
    const BlobIndex* idx;
    std::string what;
    std::uint64_t out = 0; // stream offset of the next byte it produces
    std::uint64_t in = 0;  // blob offset of the next byte to read
    std::vector<char> buf = std::vector<char>(k_in_chunk);
    std::size_t buf_pos = 0, buf_len = 0;
    ZStream z;
    bool gzip_raw = false; // raw deflate (resumed inside a member)
    bool gzip_ended = false;
    DStream ds;

    Decoder(int fd_, const BlobIndex& index, const SeekPoint& p)
        : fd(fd_), idx(&index), what("layer " + index.blob.str()), out(p.out), in(p.in) {
        if (idx->compression == formats::Compression::gzip) {
            if (p.kind == SeekPoint::Kind::inflate) {
                z.init(-15, what);
                gzip_raw = true;
                if (p.bits > 0) {
                    char c;
                    if (pread_some(fd, what, &c, 1, p.in - 1) != 1) {
                        throw formats::FormatError(what + ": truncated blob");
                    }
                    inflatePrime(&z.s, p.bits, static_cast<unsigned char>(c) >> (8 - p.bits));
                }
                inflateSetDictionary(&z.s, reinterpret_cast<const Bytef*>(p.window.data()),
                                     static_cast<uInt>(p.window.size()));
            } else {
                z.init(47, what);
            }
        } else {
            ZSTD_initDStream(ds.d);
        }
    }

    bool refill() {
        if (buf_pos < buf_len) {
            return true;
        }
        buf_len = pread_some(fd, what, buf.data(), buf.size(), in);
        buf_pos = 0;
        in += buf_len;
        return buf_len > 0;
    }

    // Decodes up to len bytes into dst; returns how many (0: end of stream).
    std::size_t produce(char* dst, std::size_t len) {
        std::size_t done = 0;
        while (done < len) {
            if (!refill()) {
                if (idx->compression == formats::Compression::zstd) {
                    ZSTD_inBuffer ib{nullptr, 0, 0};
                    ZSTD_outBuffer ob{dst + done, len - done, 0};
                    std::size_t r = ZSTD_decompressStream(ds.d, &ob, &ib);
                    if (ZSTD_isError(r)) {
                        throw formats::FormatError(
                            what + ": corrupt zstd stream: " + ZSTD_getErrorName(r));
                    }
                    done += ob.pos;
                    if (ob.pos > 0) {
                        continue;
                    }
                }
                break;
            }
            std::size_t consumed = 0;
            std::size_t made = 0;
            if (idx->compression == formats::Compression::gzip) {
                if (gzip_ended) {
                    // The next member: after a raw stream, its 8-byte trailer first.
                    std::size_t skip = gzip_raw ? 8 : 0;
                    std::uint64_t next = in - (buf_len - buf_pos) + skip;
                    z.init(47, what);
                    gzip_raw = false;
                    gzip_ended = false;
                    if (skip > 0) {
                        in = next;
                        buf_pos = buf_len = 0;
                        continue;
                    }
                }
                z.s.next_in = reinterpret_cast<Bytef*>(buf.data() + buf_pos);
                z.s.avail_in = static_cast<uInt>(buf_len - buf_pos);
                z.s.next_out = reinterpret_cast<Bytef*>(dst + done);
                z.s.avail_out = static_cast<uInt>(std::min<std::size_t>(len - done, 1U << 30));
                int r = inflate(&z.s, Z_NO_FLUSH);
                if (r == Z_NEED_DICT || r == Z_DATA_ERROR || r == Z_MEM_ERROR) {
                    throw formats::FormatError(what + ": corrupt gzip stream: " +
                                               (z.s.msg != nullptr ? z.s.msg : "inflate error"));
                }
                consumed = (buf_len - buf_pos) - z.s.avail_in;
                made = (len - done) - z.s.avail_out;
                if (r == Z_STREAM_END) {
                    gzip_ended = true;
                }
            } else {
                ZSTD_inBuffer ib{buf.data() + buf_pos, buf_len - buf_pos, 0};
                ZSTD_outBuffer ob{dst + done, len - done, 0};
                std::size_t r = ZSTD_decompressStream(ds.d, &ob, &ib);
                if (ZSTD_isError(r)) {
                    throw formats::FormatError(what +
                                               ": corrupt zstd stream: " + ZSTD_getErrorName(r));
                }
                consumed = ib.pos;
                made = ob.pos;
            }
            buf_pos += consumed;
            done += made;
            if (consumed == 0 && made == 0 && !gzip_ended) {
                throw formats::FormatError(what + ": corrupt stream: the decoder made no progress");
            }
        }
        out += done;
        return done;
    }
};

ContentReader::ContentReader(UniqueFd blob_fd, std::shared_ptr<const BlobIndex> index)
    : m_fd(std::move(blob_fd)), m_index(std::move(index)) {}

ContentReader::~ContentReader() = default;

void ContentReader::read(std::uint64_t offset, char* buf, std::size_t len) {
    const BlobIndex& idx = *m_index;
    if (offset > idx.diff_size || len > idx.diff_size - offset) {
        throw Error("layer " + idx.blob.str() + ": read past the end of the stream");
    }
    if (idx.compression == formats::Compression::none) {
        std::size_t done = 0;
        while (done < len) {
            std::size_t n = pread_some(m_fd.get(), "layer " + idx.blob.str(), buf + done,
                                       len - done, offset + done);
            if (n == 0) {
                throw formats::FormatError("layer " + idx.blob.str() + ": truncated blob");
            }
            done += n;
        }
        return;
    }
    std::lock_guard lock(m_mu);
    const SeekPoint& p = idx.point_for(offset);
    // The open decoder that got furthest without passing offset, if it is
    // past the seek point; else a new one from the seek point.
    Cursor* best = nullptr;
    for (auto& c : m_cursors) {
        if (c.decoder->out <= offset && c.decoder->out >= p.out &&
            (best == nullptr || c.decoder->out > best->decoder->out)) {
            best = &c;
        }
    }
    if (best == nullptr) {
        if (m_cursors.size() >= k_cursors) {
            auto lru =
                std::min_element(m_cursors.begin(), m_cursors.end(),
                                 [](const Cursor& a, const Cursor& b) { return a.used < b.used; });
            m_cursors.erase(lru);
        }
        m_cursors.push_back(Cursor{std::make_unique<Decoder>(m_fd.get(), idx, p), 0});
        best = &m_cursors.back();
    }
    best->used = ++m_clock;
    Decoder& d = *best->decoder;
    // A decoder that failed is in no state to go on.
    ScopeFail drop([&] { m_cursors.erase(m_cursors.begin() + (best - m_cursors.data())); });
    std::vector<char> scratch;
    while (d.out < offset) {
        if (scratch.empty()) {
            scratch.resize(256 << 10);
        }
        std::size_t want =
            static_cast<std::size_t>(std::min<std::uint64_t>(offset - d.out, scratch.size()));
        if (d.produce(scratch.data(), want) == 0) {
            throw formats::FormatError("layer " + idx.blob.str() + ": stream ends before offset " +
                                       std::to_string(offset));
        }
    }
    std::size_t done = 0;
    while (done < len) {
        std::size_t n = d.produce(buf + done, len - done);
        if (n == 0) {
            throw formats::FormatError("layer " + idx.blob.str() + ": stream ends before offset " +
                                       std::to_string(offset + len));
        }
        done += n;
    }
}

} // namespace strata::snapshot

namespace strata::snapshot {

bool choose_lazy(const Store& store, const Image& image, LazyMode mode) {
    if (image.manifest.layers.empty()) {
        return false;
    }
    // A lazily pulled image (layers in partial/, not in blobs/) can only be
    // served lazily until `strata pull` completes it, unless it is unpacked.
    auto chains = image.chain_ids();
    std::string partial;
    for (std::size_t i = 0; i < chains.size(); ++i) {
        const auto& d = image.manifest.layers[i].digest;
        if (!store.has_snapshot(chains[i]) && !store.has_blob(d) && PartialBlob::exists(store, d)) {
            partial = d.str();
            break;
        }
    }
    if (mode == LazyMode::off) {
        if (!partial.empty()) {
            throw Error("--no-lazy: the image was pulled lazily and its layer " + partial +
                        " is not all in the store yet: `strata pull` the image first");
        }
        return false;
    }
    if (mode == LazyMode::automatic && partial.empty()) {
        // Lazy by default only when the unpack it saves is worth a FUSE
        // server for the mount's life: layers still to unpack of at least
        // 64 MiB as stored (STRATA_LAZY_MIN_BYTES changes it). A small image
        // unpacks in well under a second once, and runs from its snapshots
        // ever after (a lazy `run --rm busybox true` took 0.2 s, 0.03 s
        // unpacked).
        std::uint64_t missing = 0;
        bool any = false;
        for (std::size_t i = 0; i < chains.size(); ++i) {
            if (!store.has_snapshot(chains[i])) {
                any = true;
                missing += static_cast<std::uint64_t>(image.manifest.layers[i].size);
            }
        }
        std::uint64_t threshold = 64ULL << 20;
        if (const char* env = std::getenv("STRATA_LAZY_MIN_BYTES"); env != nullptr && *env != 0) {
            threshold = std::strtoull(env, nullptr, 10);
        }
        if (!any || missing < threshold) {
            return false;
        }
    }
    if (::access("/dev/fuse", R_OK | W_OK) != 0) {
        int err = errno;
        if (!partial.empty()) {
            throw Error("cannot open /dev/fuse (" + std::string(std::strerror(err)) +
                        "): the image was pulled lazily and is served over FUSE until `strata "
                        "pull` completes it");
        }
        if (mode == LazyMode::on) {
            throw Error("--lazy: cannot open /dev/fuse (" + std::string(std::strerror(err)) +
                        "): lazy images are served over FUSE; load the fuse module, or use "
                        "--no-lazy to unpack the image");
        }
        STRATA_LOG_INFO("/dev/fuse: {}; unpacking the image instead of serving it lazily",
                        std::strerror(err));
        return false;
    }
    for (const auto& d : image.manifest.layers) {
        auto toc = toc_index_seekable(store, d); // zstd:chunked: no pass
        // The index is checked whole here (a damaged one is rebuilt and said
        // so on the terminal); mapped, it costs a hash of it.
        if (toc ? !*toc : !load_blob_index(store, d.digest).seekable) {
            std::string why = "layer " + d.digest.str() +
                              " cannot be read lazily (one zstd frame for the whole layer, as "
                              "Docker and BuildKit write it, or a sparse file)";
            if (mode == LazyMode::on) {
                throw Error("--lazy: " + why + "; use --no-lazy to unpack the image");
            }
            STRATA_LOG_INFO("{}: unpacking the image", why);
            return false;
        }
    }
    return true;
}

} // namespace strata::snapshot
