// Stream codecs for layers.
//
// zstd: libzstd's streaming API. Compression runs on ZSTD_c_nbWorkers worker
// threads (0 = all cores) and writes a content checksum; decompression checks
// it. gzip: zlib. Compression uses deflate at level 6 by default (what
// `gzip`, Docker and BuildKit use, so the ratio is what users expect), in
// parallel blocks as pigz does (see GzipCompressor);
// decompression uses inflate, which streams (libdeflate is faster but needs
// the whole member in memory, which a layer may not fit). Concatenated gzip
// members and zstd frames are decoded as one stream, as gzip -d and zstd -d do.
// Decoders write into the caller's fixed-size buffer (Decompressor::decode),
// so what a stream expands to never decides how much memory is used.
#include "formats/compression.hpp"

#include "util/error.hpp"

#include <cstring>
#include <deque>
#include <future>
#include <thread>
#include <vector>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

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

constexpr std::size_t kOutChunk = 1 << 17;

// ---- none ----

class PlainCompressor final : public Compressor {
public:
    explicit PlainCompressor(ByteSink out) : out_(std::move(out)) {}
    void write(const void* data, std::size_t size) override {
        if (size > 0) {
            out_(data, size);
        }
    }
    void finish() override {}

private:
    ByteSink out_;
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
        : out_(std::move(out)), cctx_(ZSTD_createCCtx()), buf_(ZSTD_CStreamOutSize()) {
        if (cctx_ == nullptr) {
            throw Error("zstd: cannot create a compression context");
        }
        if (threads <= 0) {
            threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        }
        check_zstd(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel,
                                          level == 0 ? ZSTD_CLEVEL_DEFAULT : level),
                   "level");
        check_zstd(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1), "checksum");
        // Always the multi-threaded format, even with one thread: zstd's
        // output is the same for any nbWorkers >= 1 but differs with 0, and
        // a layer's digest must not depend on the machine's core count.
        // (Not fatal when libzstd was built without multi-threading.)
        std::size_t r = ZSTD_CCtx_setParameter(cctx_, ZSTD_c_nbWorkers, threads);
        (void)r;
    }
    ~ZstdCompressor() override { ZSTD_freeCCtx(cctx_); }

    void write(const void* data, std::size_t size) override {
        ZSTD_inBuffer in{data, size, 0};
        while (in.pos < in.size) {
            ZSTD_outBuffer out = output();
            check_zstd(ZSTD_compressStream2(cctx_, &out, &in, ZSTD_e_continue), "compress");
            emit(out);
        }
    }

    void finish() override {
        ZSTD_inBuffer in{nullptr, 0, 0};
        std::size_t remaining;
        do {
            ZSTD_outBuffer out = output();
            remaining = ZSTD_compressStream2(cctx_, &out, &in, ZSTD_e_end);
            check_zstd(remaining, "compress");
            emit(out);
        } while (remaining != 0);
    }

    void set_output_area(OutputArea area) override { area_ = std::move(area); }

private:
    ZSTD_outBuffer output() {
        if (area_.room) {
            auto [p, n] = area_.room();
            return ZSTD_outBuffer{p, n, 0};
        }
        return ZSTD_outBuffer{buf_.data(), buf_.size(), 0};
    }
    void emit(const ZSTD_outBuffer& out) {
        if (out.pos == 0) {
            return;
        }
        if (area_.room) {
            area_.commit(out.pos);
        } else {
            out_(buf_.data(), out.pos);
        }
    }

    ByteSink out_;
    OutputArea area_;
    ZSTD_CCtx* cctx_;
    std::vector<char> buf_;
};

// The largest zstd window accepted: 512 MiB (windowLog 29), what
// containerd's decoder (klauspost/compress, used by Docker) accepts by
// default, so every layer Docker can pull can be read. The decoder's buffer
// is at most the window (plus a block), whatever the frame expands to; zstd
// -d's own default is 128 MiB (--long=27).
constexpr int kZstdWindowLogMax = 29;

class ZstdDecompressor final : public Decompressor {
public:
    explicit ZstdDecompressor(ByteSink out) : Decompressor(std::move(out)), dctx_(ZSTD_createDCtx()) {
        if (dctx_ == nullptr) {
            throw Error("zstd: cannot create a decompression context");
        }
        ZSTD_DCtx_setParameter(dctx_, ZSTD_d_windowLogMax, kZstdWindowLogMax);
    }
    ~ZstdDecompressor() override { ZSTD_freeDCtx(dctx_); }

    Step decode(const void* data, std::size_t size, void* dst, std::size_t cap) override {
        ZSTD_inBuffer in{data, size, 0};
        ZSTD_outBuffer out{dst, cap, 0};
        // One call stops at the end of a frame; go on into the next one
        // (concatenated frames) while there is input and output space.
        do {
            std::size_t in_before = in.pos;
            std::size_t out_before = out.pos;
            std::size_t r = ZSTD_decompressStream(dctx_, &out, &in);
            if (ZSTD_isError(r)) {
                if (ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge) {
                    throw Error("zstd frame needs a window larger than " +
                                std::to_string((1u << kZstdWindowLogMax) >> 20) +
                                " MiB, the most strata accepts");
                }
                throw Error(std::string("corrupt zstd stream: ") + ZSTD_getErrorName(r));
            }
            if (in.pos == in_before && out.pos == out_before) {
                break;
            }
            // Only a call that did something says where the frame is.
            last_ = r;
            seen_ = true;
        } while (in.pos < in.size && out.pos < out.size);
        return Step{in.pos, out.pos};
    }

    void finish() override {
        // ZSTD_decompressStream returns 0 exactly when a frame is complete
        // and fully flushed.
        if (!seen_ || last_ != 0) {
            throw Error("unexpected end of zstd stream");
        }
    }

private:
    ZSTD_DCtx* dctx_;
    std::size_t last_ = 1;
    bool seen_ = false;
};

// ---- gzip ----

// gzip compression, pigz-style: the input is cut into fixed 512 KiB blocks,
// each deflated on its own thread as raw deflate primed with the previous
// block's last 32 KiB (so the ratio stays close to a single stream) and
// ended with a sync flush; the blocks are joined in order into ONE gzip
// member whose CRC is combined from the blocks' CRCs. The output depends only
// on the input and the level, never on the number of threads.
class GzipCompressor final : public Compressor {
public:
    GzipCompressor(ByteSink out, int level, int threads)
        : out_(std::move(out)), level_(level == 0 ? 6 : level),
          threads_(threads > 0 ? threads
                               : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))) {
        if (level_ < 1 || level_ > 9) {
            throw UsageError("gzip level must be 1..9, not " + std::to_string(level));
        }
        cur_.reserve(kBlock);
    }
    ~GzipCompressor() override {
        for (auto& f : inflight_) {
            if (f.valid()) {
                f.wait();
            }
        }
    }

    void write(const void* data, std::size_t size) override {
        const char* p = static_cast<const char*>(data);
        while (size > 0) {
            std::size_t n = std::min(size, kBlock - cur_.size());
            cur_.append(p, n);
            p += n;
            size -= n;
            if (cur_.size() == kBlock) {
                submit(false);
            }
        }
    }

    void finish() override {
        submit(true);
        while (!inflight_.empty()) {
            drain_one();
        }
        unsigned char trailer[8];
        for (int i = 0; i < 4; ++i) {
            trailer[i] = static_cast<unsigned char>((crc_ >> (8 * i)) & 0xff);
            trailer[4 + i] = static_cast<unsigned char>((total_ >> (8 * i)) & 0xff);
        }
        out_(trailer, sizeof trailer);
    }

private:
    static constexpr std::size_t kBlock = 512 * 1024;
    static constexpr std::size_t kDict = 32 * 1024;

    struct Block {
        std::string deflated;
        uLong crc;
        std::size_t size;
    };

    static Block deflate_block(std::string input, std::string dict, int level, bool last) {
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
        if (!header_done_) {
            // No name, mtime 0, OS unix: the same bytes every time.
            const unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
            out_(header, sizeof header);
            header_done_ = true;
        }
        std::string dict = prev_tail_;
        // The next block's dictionary: the last 32 KiB of input so far.
        std::string tail = cur_.size() >= kDict ? cur_.substr(cur_.size() - kDict) : prev_tail_ + cur_;
        if (tail.size() > kDict) {
            tail.erase(0, tail.size() - kDict);
        }
        prev_tail_ = std::move(tail);
        std::string input = std::move(cur_);
        cur_.clear();
        cur_.reserve(kBlock);
        if (threads_ <= 1) {
            emit(deflate_block(std::move(input), std::move(dict), level_, last));
            return;
        }
        while (inflight_.size() >= static_cast<std::size_t>(threads_)) {
            drain_one();
        }
        inflight_.push_back(std::async(std::launch::async, &GzipCompressor::deflate_block,
                                       std::move(input), std::move(dict), level_, last));
    }

    void drain_one() {
        Block b = inflight_.front().get();
        inflight_.pop_front();
        emit(b);
    }

    void emit(const Block& b) {
        crc_ = crc32_combine(crc_, b.crc, static_cast<z_off_t>(b.size));
        total_ += b.size;
        if (!b.deflated.empty()) {
            out_(b.deflated.data(), b.deflated.size());
        }
    }

    ByteSink out_;
    int level_;
    int threads_;
    std::string cur_;
    std::string prev_tail_;
    std::deque<std::future<Block>> inflight_;
    uLong crc_ = crc32(0L, Z_NULL, 0);
    std::uint64_t total_ = 0;
    bool header_done_ = false;
};

class GzipDecompressor final : public Decompressor {
public:
    explicit GzipDecompressor(ByteSink out) : Decompressor(std::move(out)) {
        if (inflateInit2(&zs_, 15 + 16) != Z_OK) {
            throw Error("gzip: cannot initialise inflate");
        }
    }
    ~GzipDecompressor() override { inflateEnd(&zs_); }

    Step decode(const void* data, std::size_t size, void* dst, std::size_t cap) override {
        const auto* p = static_cast<const Bytef*>(data);
        auto* o = static_cast<Bytef*>(dst);
        std::size_t used = 0;
        std::size_t produced = 0;
        while (produced < cap) {
            if (ended_) {
                if (used == size) {
                    break;
                }
                // Another member follows (as in `cat a.gz b.gz`), or zero
                // padding (tape blocking), which gzip -d also tolerates.
                if (padding_ || p[used] == 0) {
                    for (std::size_t i = used; i < size; ++i) {
                        if (p[i] != 0) {
                            throw Error("corrupt gzip stream: garbage after the end of the stream");
                        }
                    }
                    padding_ = true;
                    used = size;
                    break;
                }
                if (p[used] != 0x1f) {
                    throw Error("corrupt gzip stream: garbage after the end of the stream");
                }
                inflateReset(&zs_);
                ended_ = false;
            }
            uInt in_n = static_cast<uInt>(std::min<std::size_t>(size - used, 1u << 30));
            uInt out_n = static_cast<uInt>(std::min<std::size_t>(cap - produced, 1u << 30));
            zs_.next_in = const_cast<Bytef*>(p + used);
            zs_.avail_in = in_n;
            zs_.next_out = o + produced;
            zs_.avail_out = out_n;
            int r = inflate(&zs_, Z_NO_FLUSH);
            std::size_t u = in_n - zs_.avail_in;
            std::size_t w = out_n - zs_.avail_out;
            used += u;
            produced += w;
            if (r == Z_STREAM_END) {
                ended_ = true;
                continue;
            }
            if (r == Z_BUF_ERROR) {
                break; // needs more input (or output space)
            }
            if (r != Z_OK) {
                throw Error(std::string("corrupt gzip stream: ") +
                            (zs_.msg != nullptr ? zs_.msg : "inflate failed"));
            }
            if ((u == 0 && w == 0) || (used == size && zs_.avail_out != 0)) {
                break;
            }
        }
        return Step{used, produced};
    }

    void finish() override {
        if (!ended_) {
            throw Error("unexpected end of gzip stream");
        }
    }

private:
    z_stream zs_{};
    bool ended_ = false;
    bool padding_ = false;
};

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
    if (!feed_buf_) {
        feed_buf_ = std::make_unique<char[]>(kOutChunk);
    }
    const char* p = static_cast<const char*>(data);
    for (;;) {
        Step s = decode(p, size, feed_buf_.get(), kOutChunk);
        p += s.consumed;
        size -= s.consumed;
        if (s.produced > 0 && sink_) {
            sink_(feed_buf_.get(), s.produced);
        }
        if (s.consumed == 0 && s.produced == 0) {
            if (size > 0) {
                throw Error("corrupt compressed stream: the decoder made no progress");
            }
            return;
        }
    }
}

std::unique_ptr<Decompressor> Decompressor::create(Compression c, ByteSink out) {
    switch (c) {
    case Compression::none:
        return std::make_unique<PlainDecompressor>(std::move(out));
    case Compression::gzip:
        return std::make_unique<GzipDecompressor>(std::move(out));
    case Compression::zstd:
        return std::make_unique<ZstdDecompressor>(std::move(out));
    }
    throw Error("unknown compression");
}

} // namespace strata::formats
