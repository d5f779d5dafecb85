// Stream codecs for layers.
//
// zstd: libzstd's streaming API. Compression runs on ZSTD_c_nbWorkers worker
// threads (0 = all cores) and writes a content checksum; decompression checks
// it. gzip: compression uses zlib's deflate at level 6 by default (what
// `gzip`, Docker and BuildKit use, so the ratio is what users expect), in
// parallel blocks as pigz does (see GzipCompressor); decompression uses
// ISA-L's igzip (libisal.so.2, loaded on the first gzip stream: several
// times zlib's speed for the same bytes), and zlib's inflate where ISA-L is
// not installed. Both stream (libdeflate is faster still but needs the whole
// member in memory, which a layer may not fit). Concatenated gzip members and
// zstd frames are decoded as one stream, as gzip -d and zstd -d do.
// Decoders write into the caller's fixed-size buffer (Decompressor::decode),
// so what a stream expands to never decides how much memory is used.
#include "formats/compression.hpp"

#include "util/error.hpp"
#include "util/shared_library.hpp"

#include <array>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#if __has_include(<isa-l/igzip_lib.h>)
#include <isa-l/igzip_lib.h>
#define STRATA_HAVE_ISAL 1
#endif

namespace strata::formats {

std::string_view to_string(Compression c) {
    switch (c) {
    case Compression::none:
        return "none";
    case Compression::gzip:
        return "gzip";
    case Compression::zstd:
        return "zstd";
    }
    return "unknown";
}

Compression parse_compression(std::string_view name) {
    if (name == "zstd") {
        return Compression::zstd;
    }
    if (name == "gzip") {
        return Compression::gzip;
    }
    if (name == "none" || name == "uncompressed") {
        return Compression::none;
    }
    throw UsageError("unknown compression \"" + std::string(name) + "\" (zstd, gzip or none)");
}

Compression detect_compression(const void* data, std::size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    if (size >= 2 && p[0] == 0x1f && p[1] == 0x8b) {
        return Compression::gzip;
    }
    if (size >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd) {
        return Compression::zstd;
    }
    return Compression::none;
}

std::string_view oci_layer_media_type(Compression c) {
    switch (c) {
    case Compression::none:
        return "application/vnd.oci.image.layer.v1.tar";
    case Compression::gzip:
        return "application/vnd.oci.image.layer.v1.tar+gzip";
    case Compression::zstd:
        return "application/vnd.oci.image.layer.v1.tar+zstd";
    }
    return "application/vnd.oci.image.layer.v1.tar";
}

namespace {

constexpr std::size_t k_out_chunk = 1 << 17;

// ---- none ----

class PlainCompressor final : public Compressor {
public:
    explicit PlainCompressor(ByteSink out) : m_out(std::move(out)) {}
    void write(const void* data, std::size_t size) override {
        if (size > 0) {
            m_out(data, size);
        }
    }
    void finish() override {}

private:
    ByteSink m_out;
};

class PlainDecompressor final : public Decompressor {
public:
    explicit PlainDecompressor(ByteSink out) : Decompressor(std::move(out)) {}
    Step decode(const void* in, std::size_t in_size, void* out, std::size_t out_size) override {
        std::size_t n = std::min(in_size, out_size);
        if (n > 0) {
            std::memcpy(out, in, n);
        }
        return Step{n, n};
    }
    void feed(const void* data, std::size_t size) override {
        if (size > 0 && sink()) {
            sink()(data, size);
        }
    }
    void finish() override {}
};

// ---- zstd ----

void check_zstd(std::size_t r, const char* what) {
    if (ZSTD_isError(r)) {
        throw Error(std::string("zstd ") + what + ": " + ZSTD_getErrorName(r));
    }
}

class ZstdCompressor final : public Compressor {
public:
    ZstdCompressor(ByteSink out, int level, int threads)
        : m_out(std::move(out)), m_cctx(ZSTD_createCCtx()), m_buf(ZSTD_CStreamOutSize()) {
        if (m_cctx == nullptr) {
            throw Error("zstd: cannot create a compression context");
        }
        if (threads <= 0) {
            threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        }
        check_zstd(ZSTD_CCtx_setParameter(m_cctx, ZSTD_c_compressionLevel,
                                          level == 0 ? ZSTD_CLEVEL_DEFAULT : level),
                   "level");
        check_zstd(ZSTD_CCtx_setParameter(m_cctx, ZSTD_c_checksumFlag, 1), "checksum");
        // Always the multi-threaded format, even with one thread: zstd's
        // output is the same for any nbWorkers >= 1 but differs with 0, and
        // a layer's digest must not depend on the machine's core count.
        // (Not fatal when libzstd was built without multi-threading.)
        std::size_t r = ZSTD_CCtx_setParameter(m_cctx, ZSTD_c_nbWorkers, threads);
        (void)r;
    }
    ~ZstdCompressor() override { ZSTD_freeCCtx(m_cctx); }

    void write(const void* data, std::size_t size) override {
        ZSTD_inBuffer in{data, size, 0};
        while (in.pos < in.size) {
            ZSTD_outBuffer out = output();
            check_zstd(ZSTD_compressStream2(m_cctx, &out, &in, ZSTD_e_continue), "compress");
            emit(out);
        }
    }

    void finish() override {
        ZSTD_inBuffer in{nullptr, 0, 0};
        std::size_t remaining;
        do {
            ZSTD_outBuffer out = output();
            remaining = ZSTD_compressStream2(m_cctx, &out, &in, ZSTD_e_end);
            check_zstd(remaining, "compress");
            emit(out);
        } while (remaining != 0);
    }

    void set_output_area(OutputArea area) override { m_area = std::move(area); }

private:
    ZSTD_outBuffer output() {
        if (m_area.room) {
            auto [p, n] = m_area.room();
            return ZSTD_outBuffer{p, n, 0};
        }
        return ZSTD_outBuffer{m_buf.data(), m_buf.size(), 0};
    }
    void emit(const ZSTD_outBuffer& out) {
        if (out.pos == 0) {
            return;
        }
        if (m_area.room) {
            m_area.commit(out.pos);
        } else {
            m_out(m_buf.data(), out.pos);
        }
    }

    ByteSink m_out;
    OutputArea m_area;
    ZSTD_CCtx* m_cctx;
    std::vector<char> m_buf;
};

// The largest zstd window accepted: 512 MiB (windowLog 29), what
// containerd's decoder (klauspost/compress, used by Docker) accepts by
// default, so every layer Docker can pull can be read. The decoder's buffer
// is at most the window (plus a block), whatever the frame expands to; zstd
// -d's own default is 128 MiB (--long=27).
constexpr int k_zstd_window_log_max = 29;

class ZstdDecompressor final : public Decompressor {
public:
    explicit ZstdDecompressor(ByteSink out)
        : Decompressor(std::move(out)), m_dctx(ZSTD_createDCtx()) {
        if (m_dctx == nullptr) {
            throw Error("zstd: cannot create a decompression context");
        }
        ZSTD_DCtx_setParameter(m_dctx, ZSTD_d_windowLogMax, k_zstd_window_log_max);
    }
    ~ZstdDecompressor() override { ZSTD_freeDCtx(m_dctx); }

    Step decode(const void* data, std::size_t size, void* dst, std::size_t cap) override {
        ZSTD_inBuffer in{data, size, 0};
        ZSTD_outBuffer out{dst, cap, 0};
        // One call stops at the end of a frame; go on into the next one
        // (concatenated frames) while there is input and output space.
        do {
            std::size_t in_before = in.pos;
            std::size_t out_before = out.pos;
            std::size_t r = ZSTD_decompressStream(m_dctx, &out, &in);
            if (ZSTD_isError(r)) {
                if (ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge) {
                    throw Error("zstd frame needs a window larger than " +
                                std::to_string((1u << k_zstd_window_log_max) >> 20) +
                                " MiB, the most strata accepts");
                }
                throw Error(std::string("corrupt zstd stream: ") + ZSTD_getErrorName(r));
            }
            if (in.pos == in_before && out.pos == out_before) {
                break;
            }
            // Only a call that did something says where the frame is.
            m_last = r;
            m_seen = true;
        } while (in.pos < in.size && out.pos < out.size);
        return Step{in.pos, out.pos};
    }

    void finish() override {
        // ZSTD_decompressStream returns 0 exactly when a frame is complete
        // and fully flushed.
        if (!m_seen || m_last != 0) {
            throw Error("unexpected end of zstd stream");
        }
    }

private:
    ZSTD_DCtx* m_dctx;
    std::size_t m_last = 1;
    bool m_seen = false;
};

// ---- gzip ----

// A fixed set of worker threads running queued jobs in the order given,
// started with the compressor and joined when it goes (pigz keeps its
// threads the same way, instead of one new thread per block).
class WorkerPool {
public:
    explicit WorkerPool(int threads) {
        m_workers.reserve(static_cast<std::size_t>(threads));
        for (int i = 0; i < threads; ++i) {
            m_workers.emplace_back([this] { work(); });
        }
    }
    ~WorkerPool() {
        {
            std::lock_guard lock(m_mutex);
            m_stop = true;
        }
        m_ready.notify_all();
        for (auto& t : m_workers) {
            t.join();
        }
    }
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    void post(std::function<void()> job) {
        {
            std::lock_guard lock(m_mutex);
            m_jobs.push_back(std::move(job));
        }
        m_ready.notify_one();
    }

private:
    void work() {
        for (;;) {
            std::function<void()> job;
            {
                std::unique_lock lock(m_mutex);
                m_ready.wait(lock, [this] { return m_stop || !m_jobs.empty(); });
                if (m_jobs.empty()) {
                    return;
                }
                job = std::move(m_jobs.front());
                m_jobs.pop_front();
            }
            job();
        }
    }

    std::mutex m_mutex;
    std::condition_variable m_ready;
    std::deque<std::function<void()>> m_jobs;
    bool m_stop = false;
    std::vector<std::thread> m_workers;
};

// gzip compression, pigz-style: the input is cut into fixed 512 KiB blocks,
// each deflated by a worker of a fixed pool as raw deflate primed with the
// previous block's last 32 KiB (so the ratio stays close to a single stream)
// and ended with a sync flush; the blocks are joined in order into ONE gzip
// member whose CRC is combined from the blocks' CRCs. Up to two blocks per
// worker are in flight, so the workers never wait for the thread feeding
// them. The output depends only on the input and the level, never on the
// number of threads.
class GzipCompressor final : public Compressor {
public:
    GzipCompressor(ByteSink out, int level, int threads)
        : m_out(std::move(out)), m_level(level == 0 ? 6 : level),
          m_threads(threads > 0
                        ? threads
                        : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))) {
        if (m_level < 1 || m_level > 9) {
            throw UsageError("gzip level must be 1..9, not " + std::to_string(level));
        }
        m_cur.reserve(k_block);
    }
    ~GzipCompressor() override {
        for (auto& f : m_inflight) {
            if (f.valid()) {
                f.wait();
            }
        }
    }
    GzipCompressor(const GzipCompressor&) = delete;
    GzipCompressor& operator=(const GzipCompressor&) = delete;

    void write(const void* data, std::size_t size) override {
        const char* p = static_cast<const char*>(data);
        while (size > 0) {
            std::size_t n = std::min(size, k_block - m_cur.size());
            m_cur.append(p, n);
            p += n;
            size -= n;
            if (m_cur.size() == k_block) {
                submit(false);
            }
        }
    }

    void finish() override {
        submit(true);
        while (!m_inflight.empty()) {
            drain_one();
        }
        unsigned char trailer[8];
        for (int i = 0; i < 4; ++i) {
            trailer[i] = static_cast<unsigned char>((m_crc >> (8 * i)) & 0xff);
            trailer[4 + i] = static_cast<unsigned char>((m_total >> (8 * i)) & 0xff);
        }
        m_out(trailer, sizeof trailer);
    }

private:
    static constexpr std::size_t k_block = 512 * 1024;
    static constexpr std::size_t k_dict = 32 * 1024;

    struct Block {
        std::string deflated;
        uLong crc;
        std::size_t size;
    };

    // Whether deflate would gain next to nothing on a block: its bytes are
    // nearly uniform (entropy of the byte histogram at least 7.98 bits per
    // byte, so Huffman coding saves under 0.25%) and no 64-byte sequence
    // occurs twice within it and the 32 KiB before it (what LZ77 could
    // match), found through content-defined anchors of a gear hash (a
    // repeat is seen whatever its alignment). Such a block (already
    // compressed or random data) is stored rather than searched for
    // matches, which costs zlib about as much as compressing text. The
    // decision depends on the bytes only, so the output stays deterministic.
    static bool incompressible(const std::string& dict, const std::string& input) {
        if (input.size() < 64 * 1024) {
            return false;
        }
        std::array<std::uint64_t, 256> counts{};
        for (unsigned char c : input) {
            ++counts[c];
        }
        double n = static_cast<double>(input.size());
        double bits = 0;
        for (std::uint64_t c : counts) {
            if (c != 0) {
                double p = static_cast<double>(c) / n;
                bits -= p * std::log2(p);
            }
        }
        if (bits < 7.98) {
            return false;
        }
        std::unordered_set<std::uint64_t> anchors;
        anchors.reserve((dict.size() + input.size()) / 32);
        std::uint64_t h = 0;
        std::size_t seen = 0;
        for (const std::string* part : {&dict, &input}) {
            for (unsigned char c : *part) {
                h = (h << 1) + k_gear[c];
                // The hash covers the last 64 bytes; about one anchor in 64.
                if (++seen >= 64 && (h >> 58) == 0 && !anchors.insert(h).second) {
                    return false;
                }
            }
        }
        return true;
    }

    // Gear hash table: 256 fixed pseudo-random 64-bit values (splitmix64).
    static constexpr std::array<std::uint64_t, 256> k_gear = [] {
        std::array<std::uint64_t, 256> t{};
        std::uint64_t x = 0x9e3779b97f4a7c15ull;
        for (auto& v : t) {
            x += 0x9e3779b97f4a7c15ull;
            std::uint64_t z = x;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            v = z ^ (z >> 31);
        }
        return t;
    }();

    static Block deflate_block(std::string input, std::string dict, int level, bool last) {
        if (incompressible(dict, input)) {
            level = Z_NO_COMPRESSION;
        }
        z_stream zs{};
        if (deflateInit2(&zs, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            throw Error("gzip: cannot initialise deflate");
        }
        if (!dict.empty()) {
            deflateSetDictionary(&zs, reinterpret_cast<const Bytef*>(dict.data()),
                                 static_cast<uInt>(dict.size()));
        }
        Block b;
        b.size = input.size();
        b.crc = crc32(0L, reinterpret_cast<const Bytef*>(input.data()),
                      static_cast<uInt>(input.size()));
        b.deflated.resize(deflateBound(&zs, static_cast<uLong>(input.size())) + 64);
        zs.next_in = reinterpret_cast<Bytef*>(input.data());
        zs.avail_in = static_cast<uInt>(input.size());
        zs.next_out = reinterpret_cast<Bytef*>(b.deflated.data());
        zs.avail_out = static_cast<uInt>(b.deflated.size());
        int r = deflate(&zs, last ? Z_FINISH : Z_SYNC_FLUSH);
        bool ok = last ? r == Z_STREAM_END : (r == Z_OK && zs.avail_in == 0);
        b.deflated.resize(b.deflated.size() - zs.avail_out);
        deflateEnd(&zs);
        if (!ok) {
            throw Error("gzip: deflate failed");
        }
        return b;
    }

    void submit(bool last) {
        if (!m_header_done) {
            // No name, mtime 0, OS unix: the same bytes every time.
            const unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
            m_out(header, sizeof header);
            m_header_done = true;
        }
        std::string dict = m_prev_tail;
        // The next block's dictionary: the last 32 KiB of input so far.
        std::string tail =
            m_cur.size() >= k_dict ? m_cur.substr(m_cur.size() - k_dict) : m_prev_tail + m_cur;
        if (tail.size() > k_dict) {
            tail.erase(0, tail.size() - k_dict);
        }
        m_prev_tail = std::move(tail);
        std::string input = std::move(m_cur);
        m_cur.clear();
        m_cur.reserve(k_block);
        if (m_threads <= 1) {
            emit(deflate_block(std::move(input), std::move(dict), m_level, last));
            return;
        }
        if (!m_pool) {
            m_pool = std::make_unique<WorkerPool>(m_threads);
        }
        while (m_inflight.size() >= 2 * static_cast<std::size_t>(m_threads)) {
            drain_one();
        }
        auto job = std::make_shared<std::packaged_task<Block()>>(
            [input = std::move(input), dict = std::move(dict), level = m_level, last]() mutable {
                return deflate_block(std::move(input), std::move(dict), level, last);
            });
        m_inflight.push_back(job->get_future());
        m_pool->post([job] { (*job)(); });
    }

    void drain_one() {
        Block b = m_inflight.front().get();
        m_inflight.pop_front();
        emit(b);
    }

    void emit(const Block& b) {
        m_crc = crc32_combine(m_crc, b.crc, static_cast<z_off_t>(b.size));
        m_total += b.size;
        if (!b.deflated.empty()) {
            m_out(b.deflated.data(), b.deflated.size());
        }
    }

    ByteSink m_out;
    int m_level;
    int m_threads;
    std::string m_cur;
    std::string m_prev_tail;
    std::deque<std::future<Block>> m_inflight;
    // Declared after m_inflight: destroyed first, so its workers finish
    // every queued block before the futures go.
    std::unique_ptr<WorkerPool> m_pool;
    uLong m_crc = crc32(0L, Z_NULL, 0);
    std::uint64_t m_total = 0;
    bool m_header_done = false;
};

// What both gzip decoders share: a stream is one or more members (as in
// `cat a.gz b.gz`), possibly followed by zero padding (tape blocking), which
// gzip -d also tolerates; anything else after a member is an error. The
// engine decodes within one member: inflate() returns how much it read and
// wrote and whether the member ended; restart() readies it for the next.
class GzipMembers : public Decompressor {
public:
    explicit GzipMembers(ByteSink out) : Decompressor(std::move(out)) {}

    Step decode(const void* data, std::size_t size, void* dst, std::size_t cap) override {
        const auto* p = static_cast<const unsigned char*>(data);
        auto* o = static_cast<unsigned char*>(dst);
        std::size_t used = 0;
        std::size_t produced = 0;
        while (produced < cap) {
            if (m_ended) {
                if (used == size) {
                    break;
                }
                if (m_padding || p[used] == 0) {
                    for (std::size_t i = used; i < size; ++i) {
                        if (p[i] != 0) {
                            throw Error("corrupt gzip stream: garbage after the end of the stream");
                        }
                    }
                    m_padding = true;
                    used = size;
                    break;
                }
                if (p[used] != 0x1f) {
                    throw Error("corrupt gzip stream: garbage after the end of the stream");
                }
                restart();
                m_ended = false;
            }
            auto in_n = static_cast<std::uint32_t>(std::min<std::size_t>(size - used, 1u << 30));
            auto out_n =
                static_cast<std::uint32_t>(std::min<std::size_t>(cap - produced, 1u << 30));
            Inflated r = inflate(p + used, in_n, o + produced, out_n);
            used += r.read;
            produced += r.written;
            if (r.member_end) {
                m_ended = true;
                continue;
            }
            if ((r.read == 0 && r.written == 0) || (used == size && r.written < out_n)) {
                break; // needs more input (or output space)
            }
        }
        return Step{used, produced};
    }

    void finish() override {
        if (!m_ended) {
            throw Error("unexpected end of gzip stream");
        }
    }

protected:
    struct Inflated {
        std::size_t read = 0;
        std::size_t written = 0;
        bool member_end = false;
    };
    virtual Inflated inflate(const unsigned char* in, std::uint32_t in_n, unsigned char* out,
                             std::uint32_t out_n) = 0;
    virtual void restart() = 0;

private:
    bool m_ended = false;
    bool m_padding = false;
};

class ZlibGzipDecompressor final : public GzipMembers {
public:
    explicit ZlibGzipDecompressor(ByteSink out) : GzipMembers(std::move(out)) {
        if (inflateInit2(&m_zs, 15 + 16) != Z_OK) {
            throw Error("gzip: cannot initialise inflate");
        }
    }
    ~ZlibGzipDecompressor() override { inflateEnd(&m_zs); }

private:
    Inflated inflate(const unsigned char* in, std::uint32_t in_n, unsigned char* out,
                     std::uint32_t out_n) override {
        m_zs.next_in = const_cast<Bytef*>(in);
        m_zs.avail_in = in_n;
        m_zs.next_out = out;
        m_zs.avail_out = out_n;
        int r = ::inflate(&m_zs, Z_NO_FLUSH);
        Inflated res{in_n - m_zs.avail_in, out_n - m_zs.avail_out, r == Z_STREAM_END};
        if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) {
            throw Error(std::string("corrupt gzip stream: ") +
                        (m_zs.msg != nullptr ? m_zs.msg : "inflate failed"));
        }
        return res;
    }
    void restart() override { inflateReset(&m_zs); }

    z_stream m_zs{};
};

#ifdef STRATA_HAVE_ISAL
// ISA-L, loaded once on first use and never unloaded; absent, gzip streams
// go through zlib.
struct IsalApi {
    SharedLibrary lib{"libisal.so.2", "libisal2"};
    void (*init)(inflate_state*) = nullptr;
    void (*reset)(inflate_state*) = nullptr;
    int (*inflate)(inflate_state*) = nullptr;
};

const IsalApi* isal_api() {
    static const IsalApi api = [] {
        IsalApi a;
        (void)(a.lib.bind(a.init, "isal_inflate_init") &&
               a.lib.bind(a.reset, "isal_inflate_reset") && a.lib.bind(a.inflate, "isal_inflate"));
        return a;
    }();
    return api.lib.loaded() ? &api : nullptr;
}

// The member header is parsed here (RFC 1952: the fixed 10 bytes, then
// FEXTRA, FNAME, FCOMMENT and FHCRC when flagged) and igzip decodes the
// deflate data and checks the trailer (CRC-32 and size): igzip's own header
// parser miscounts the header CRC of a header split across calls.
class IgzipDecompressor final : public GzipMembers {
public:
    IgzipDecompressor(ByteSink out, const IsalApi& api)
        : GzipMembers(std::move(out)), m_api(api), m_st(std::make_unique<inflate_state>()) {
        restart();
    }

private:
    Inflated inflate(const unsigned char* in, std::uint32_t in_n, unsigned char* out,
                     std::uint32_t out_n) override {
        if (!m_header_done) {
            std::uint32_t n = 0;
            while (n < in_n && !m_header_done) {
                header_byte(in[n++]);
            }
            return Inflated{n, 0, false};
        }
        m_st->next_in = const_cast<std::uint8_t*>(in);
        m_st->avail_in = in_n;
        m_st->next_out = out;
        m_st->avail_out = out_n;
        int r = m_api.inflate(m_st.get());
        if (r != ISAL_DECOMP_OK) {
            throw Error(std::string("corrupt gzip stream: ") + message(r));
        }
        return Inflated{in_n - m_st->avail_in, out_n - m_st->avail_out,
                        m_st->block_state == ISAL_BLOCK_FINISH};
    }

    void restart() override {
        if (m_started) {
            m_api.reset(m_st.get());
        } else {
            m_api.init(m_st.get());
            m_started = true;
        }
        m_st->crc_flag = ISAL_GZIP_NO_HDR_VER; // the trailer follows the deflate data
        m_header.clear();
        m_header_done = false;
        m_need = 10;
        m_field = Field::fixed;
    }

    enum class Field { fixed, extra_len, extra, name, comment, hcrc };

    void header_byte(unsigned char b) {
        m_header.push_back(static_cast<char>(b));
        switch (m_field) {
        case Field::name:
        case Field::comment:
            if (b == 0) {
                next_field();
            }
            return;
        default:
            if (--m_need == 0) {
                next_field();
            }
        }
    }

    void next_field() {
        const auto* h = reinterpret_cast<const unsigned char*>(m_header.data());
        unsigned flags = h[3];
        if (m_field == Field::fixed) {
            if (h[0] != 0x1f || h[1] != 0x8b) {
                throw Error("corrupt gzip stream: incorrect header check");
            }
            if (h[2] != 8) {
                throw Error("corrupt gzip stream: unknown compression method");
            }
            if ((flags & 0xe0) != 0) {
                throw Error("corrupt gzip stream: unknown header flags set");
            }
        }
        if (m_field == Field::extra_len) {
            m_need = h[10] | (static_cast<unsigned>(h[11]) << 8);
            m_field = Field::extra;
            if (m_need > 0) {
                return;
            }
        }
        // The fields in the order RFC 1952 gives them, each when flagged.
        constexpr unsigned k_fhcrc = 2, k_fextra = 4, k_fname = 8, k_fcomment = 16;
        if (m_field < Field::extra_len && (flags & k_fextra) != 0) {
            m_field = Field::extra_len;
            m_need = 2;
            return;
        }
        if (m_field < Field::name && (flags & k_fname) != 0) {
            m_field = Field::name;
            return;
        }
        if (m_field < Field::comment && (flags & k_fcomment) != 0) {
            m_field = Field::comment;
            return;
        }
        if (m_field < Field::hcrc && (flags & k_fhcrc) != 0) {
            m_field = Field::hcrc;
            m_need = 2;
            return;
        }
        if (m_field == Field::hcrc) {
            std::size_t n = m_header.size() - 2;
            uLong crc = crc32(0L, h, static_cast<uInt>(n));
            if ((h[n] | (static_cast<unsigned>(h[n + 1]) << 8)) != (crc & 0xffff)) {
                throw Error("corrupt gzip stream: header crc mismatch");
            }
        }
        m_header_done = true;
    }

    static const char* message(int r) {
        switch (r) {
        case ISAL_INVALID_BLOCK:
            return "invalid block type";
        case ISAL_INVALID_SYMBOL:
            return "invalid code";
        case ISAL_INVALID_LOOKBACK:
            return "invalid distance too far back";
        case ISAL_INCORRECT_CHECKSUM:
            return "incorrect data check";
        case ISAL_NEED_DICT:
            return "a preset dictionary is needed";
        default:
            return "inflate failed";
        }
    }

    const IsalApi& m_api;
    std::unique_ptr<inflate_state> m_st; // large (~40 KiB): on the heap
    bool m_started = false;
    std::string m_header;
    bool m_header_done = false;
    std::size_t m_need = 10;
    Field m_field = Field::fixed;
};
#endif

std::unique_ptr<Decompressor> gzip_decompressor(ByteSink out, GzipEngine engine) {
#ifdef STRATA_HAVE_ISAL
    if (engine == GzipEngine::fastest) {
        if (const IsalApi* api = isal_api()) {
            return std::make_unique<IgzipDecompressor>(std::move(out), *api);
        }
    }
#else
    (void)engine;
#endif
    return std::make_unique<ZlibGzipDecompressor>(std::move(out));
}

} // namespace

std::unique_ptr<Compressor> Compressor::create(Compression c, ByteSink out, int level,
                                               int threads) {
    switch (c) {
    case Compression::none:
        return std::make_unique<PlainCompressor>(std::move(out));
    case Compression::gzip:
        return std::make_unique<GzipCompressor>(std::move(out), level, threads);
    case Compression::zstd:
        return std::make_unique<ZstdCompressor>(std::move(out), level, threads);
    }
    throw Error("unknown compression");
}

void Decompressor::feed(const void* data, std::size_t size) {
    if (!m_feed_buf) {
        m_feed_buf = std::make_unique<char[]>(k_out_chunk);
    }
    const char* p = static_cast<const char*>(data);
    for (;;) {
        Step s = decode(p, size, m_feed_buf.get(), k_out_chunk);
        p += s.consumed;
        size -= s.consumed;
        if (s.produced > 0 && m_sink) {
            m_sink(m_feed_buf.get(), s.produced);
        }
        if (s.consumed == 0 && s.produced == 0) {
            if (size > 0) {
                throw Error("corrupt compressed stream: the decoder made no progress");
            }
            return;
        }
    }
}

std::unique_ptr<Decompressor> Decompressor::create_gzip(ByteSink out, GzipEngine engine) {
    return gzip_decompressor(std::move(out), engine);
}

bool igzip_available() {
#ifdef STRATA_HAVE_ISAL
    return isal_api() != nullptr;
#else
    return false;
#endif
}

std::unique_ptr<Decompressor> Decompressor::create(Compression c, ByteSink out) {
    switch (c) {
    case Compression::none:
        return std::make_unique<PlainDecompressor>(std::move(out));
    case Compression::gzip:
        return gzip_decompressor(std::move(out), GzipEngine::fastest);
    case Compression::zstd:
        return std::make_unique<ZstdDecompressor>(std::move(out));
    }
    throw Error("unknown compression");
}

} // namespace strata::formats
