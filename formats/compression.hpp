// Stream compression for layers: detection by magic bytes, and streaming
// decompressors/compressors over zstd (multi-threaded) and gzip.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace strata::formats {

enum class Compression { none, gzip, zstd };

std::string_view to_string(Compression c);
// "zstd", "gzip", "none" (also "uncompressed"); throws UsageError otherwise.
Compression parse_compression(std::string_view name);
// Looks at the first bytes of a stream (at least 4 are needed to tell).
Compression detect_compression(const void* data, std::size_t size);
// The layer media type for a compression (OCI).
std::string_view oci_layer_media_type(Compression c);

// A sink for bytes; used to chain hashing, compression and output.
using ByteSink = std::function<void(const void* data, std::size_t size)>;

// Streaming compressor: write() uncompressed bytes, compressed bytes come out
// of the sink; finish() flushes the end of stream.
class Compressor {
public:
    virtual ~Compressor() = default;
    virtual void write(const void* data, std::size_t size) = 0;
    virtual void finish() = 0;
    // level: 0 = the codec's default. threads: 0 = all cores (zstd workers;
    // gzip compresses blocks in parallel; the output never depends on threads).
    static std::unique_ptr<Compressor> create(Compression c, ByteSink out, int level = 0,
                                              int threads = 0);

    // Optional: memory the compressor may write its output into directly,
    // instead of handing it to the sink from a buffer of its own (one copy
    // less per output byte). room() is free space (never empty); commit(n)
    // says that its first n bytes are output. zstd uses it; the other codecs
    // keep calling the sink.
    struct OutputArea {
        std::function<std::pair<char*, std::size_t>()> room;
        std::function<void(std::size_t)> commit;
    };
    virtual void set_output_area(OutputArea) {}
};

// gzip decoders: ISA-L's igzip when libisal.so.2 is installed (fastest),
// zlib's inflate otherwise.
enum class GzipEngine { fastest, zlib };
bool igzip_available();

// Streaming decompressor. Two ways to drive it:
//  - decode(): pull-style, the caller owns both buffers. Each call consumes
//    some input and writes at most out_size bytes, so memory never grows with
//    the compression ratio (a decompression bomb costs time, not memory).
//    When the input is exhausted, keep calling decode() with no input until
//    it produces nothing: the decoder may still hold output.
//  - feed(): push-style, decompressed bytes go to the sink given to create(),
//    in pieces of at most 128 KiB.
// finish() checks the stream ended properly (a truncated stream is an error
// naming the codec).
class Decompressor {
public:
    struct Step {
        std::size_t consumed = 0;
        std::size_t produced = 0;
    };
    virtual ~Decompressor() = default;
    // Throws on corrupt input; never returns {0, 0} while given input and
    // output space (no progress is an error).
    virtual Step decode(const void* in, std::size_t in_size, void* out, std::size_t out_size) = 0;
    virtual void feed(const void* data, std::size_t size);
    virtual void finish() = 0;
    // out may be empty when only decode() is used.
    static std::unique_ptr<Decompressor> create(Compression c, ByteSink out = {});
    // A gzip decoder on a chosen engine (create() takes the fastest there
    // is; tests compare the two on the same bytes).
    static std::unique_ptr<Decompressor> create_gzip(ByteSink out, GzipEngine engine);

protected:
    explicit Decompressor(ByteSink out) : m_sink(std::move(out)) {}
    const ByteSink& sink() const noexcept { return m_sink; }

private:
    ByteSink m_sink;
    std::unique_ptr<char[]> m_feed_buf;
};

} // namespace strata::formats
