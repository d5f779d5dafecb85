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
#include "formats/compression.hpp"

#include "util/error.hpp"

#include <deque>
#include <future>
#include <thread>
#include <vector>
#include <zlib.h>
#include <zstd.h>

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
    explicit PlainDecompressor(ByteSink out) : out_(std::move(out)) {}
    void feed(const void* data, std::size_t size) override {
        if (size > 0) {
            out_(data, size);
        }
    }
    void finish() override {}

private:
    ByteSink out_;
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
        if (threads > 1) {
            // Not fatal when libzstd was built without multi-threading.
            std::size_t r = ZSTD_CCtx_setParameter(cctx_, ZSTD_c_nbWorkers, threads);
            (void)r;
        }
    }
    ~ZstdCompressor() override { ZSTD_freeCCtx(cctx_); }

    void write(const void* data, std::size_t size) override {
        ZSTD_inBuffer in{data, size, 0};
        while (in.pos < in.size) {
            ZSTD_outBuffer out{buf_.data(), buf_.size(), 0};
            check_zstd(ZSTD_compressStream2(cctx_, &out, &in, ZSTD_e_continue), "compress");
            if (out.pos > 0) {
                out_(buf_.data(), out.pos);
            }
        }
    }

    void finish() override {
        ZSTD_inBuffer in{nullptr, 0, 0};
        std::size_t remaining;
        do {
            ZSTD_outBuffer out{buf_.data(), buf_.size(), 0};
            remaining = ZSTD_compressStream2(cctx_, &out, &in, ZSTD_e_end);
            check_zstd(remaining, "compress");
            if (out.pos > 0) {
                out_(buf_.data(), out.pos);
            }
        } while (remaining != 0);
    }

private:
    ByteSink out_;
    ZSTD_CCtx* cctx_;
    std::vector<char> buf_;
};

class ZstdDecompressor final : public Decompressor {
public:
    explicit ZstdDecompressor(ByteSink out)
        : out_(std::move(out)), dctx_(ZSTD_createDCtx()), buf_(ZSTD_DStreamOutSize()) {
        if (dctx_ == nullptr) {
            throw Error("zstd: cannot create a decompression context");
        }
        // Layers made with --long or large windows: accept up to 2 GiB
        // windows (zstd -d --long=31 does the same).
        ZSTD_DCtx_setParameter(dctx_, ZSTD_d_windowLogMax, 31);
    }
    ~ZstdDecompressor() override { ZSTD_freeDCtx(dctx_); }

    void feed(const void* data, std::size_t size) override {
        ZSTD_inBuffer in{data, size, 0};
        bool full = false;
        // Keep going while there is input, or while the last call filled the
        // output buffer (the decoder may hold more).
        while (in.pos < in.size || full) {
            std::size_t before = in.pos;
            ZSTD_outBuffer out{buf_.data(), buf_.size(), 0};
            std::size_t r = ZSTD_decompressStream(dctx_, &out, &in);
            if (ZSTD_isError(r)) {
                throw Error(std::string("corrupt zstd stream: ") + ZSTD_getErrorName(r));
            }
            if (in.pos != before || out.pos > 0) {
                // Only a call that did something says where the frame is.
                last_ = r;
                seen_ = true;
            }
            if (out.pos > 0) {
                out_(buf_.data(), out.pos);
            }
            full = out.pos == out.size;
            if (!full && in.pos == before && in.pos < in.size) {
                throw Error("corrupt zstd stream: decoder made no progress");
            }
        }
    }

    void finish() override {
        // ZSTD_decompressStream returns 0 exactly when a frame is complete
        // and fully flushed.
        if (!seen_ || last_ != 0) {
            throw Error("unexpected end of zstd stream");
        }
    }

private:
    ByteSink out_;
    ZSTD_DCtx* dctx_;
    std::vector<char> buf_;
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
    explicit GzipDecompressor(ByteSink out) : out_(std::move(out)), buf_(kOutChunk) {
        if (inflateInit2(&zs_, 15 + 16) != Z_OK) {
            throw Error("gzip: cannot initialise inflate");
        }
    }
    ~GzipDecompressor() override { inflateEnd(&zs_); }

    void feed(const void* data, std::size_t size) override {
        const auto* p = static_cast<const Bytef*>(data);
        while (size > 0) {
            if (ended_) {
                // Another member follows (as in `cat a.gz b.gz`), or zero
                // padding (tape blocking), which gzip -d also tolerates.
                if (padding_ || *p == 0) {
                    for (std::size_t i = 0; i < size; ++i) {
                        if (p[i] != 0) {
                            throw Error("corrupt gzip stream: garbage after the end of the stream");
                        }
                    }
                    padding_ = true;
                    return;
                }
                if (*p != 0x1f) {
                    throw Error("corrupt gzip stream: garbage after the end of the stream");
                }
                inflateReset(&zs_);
                ended_ = false;
            }
            uInt n = static_cast<uInt>(std::min<std::size_t>(size, 1u << 30));
            zs_.next_in = const_cast<Bytef*>(p);
            zs_.avail_in = n;
            for (;;) {
                zs_.next_out = reinterpret_cast<Bytef*>(buf_.data());
                zs_.avail_out = static_cast<uInt>(buf_.size());
                int r = inflate(&zs_, Z_NO_FLUSH);
                std::size_t have = buf_.size() - zs_.avail_out;
                if (have > 0) {
                    out_(buf_.data(), have);
                }
                if (r == Z_STREAM_END) {
                    ended_ = true;
                    break;
                }
                if (r == Z_BUF_ERROR) {
                    break; // needs more input
                }
                if (r != Z_OK) {
                    throw Error(std::string("corrupt gzip stream: ") +
                                (zs_.msg != nullptr ? zs_.msg : "inflate failed"));
                }
                if (zs_.avail_in == 0 && zs_.avail_out != 0) {
                    break;
                }
            }
            std::size_t used = n - zs_.avail_in;
            p += used;
            size -= used;
            if (used == 0 && !ended_) {
                break;
            }
        }
    }

    void finish() override {
        if (!ended_) {
            throw Error("unexpected end of gzip stream");
        }
    }

private:
    ByteSink out_;
    z_stream zs_{};
    std::vector<char> buf_;
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
