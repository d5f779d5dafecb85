#include "formats/compression.hpp"
#include "util/child.hpp"
#include "util/error.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <zlib.h>

using namespace strata;
using namespace strata::formats;

namespace {

// Deterministic, somewhat compressible data.
std::string sample(std::size_t n) {
    std::string s;
    s.reserve(n);
    std::uint32_t x = 12345;
    while (s.size() < n) {
        x = x * 1103515245u + 12345u;
        if ((x >> 16) % 4 == 0) {
            s += "the quick brown fox ";
        } else {
            s += static_cast<char>('a' + (x >> 20) % 26);
        }
    }
    s.resize(n);
    return s;
}

std::string compress(Compression c, const std::string& in, int level = 0, int threads = 0,
                     std::size_t chunk = 7919) {
    std::string out;
    auto comp = Compressor::create(
        c, [&](const void* d, std::size_t n) { out.append(static_cast<const char*>(d), n); },
        level, threads);
    for (std::size_t i = 0; i < in.size(); i += chunk) {
        comp->write(in.data() + i, std::min(chunk, in.size() - i));
    }
    comp->finish();
    return out;
}

std::string decompress(Compression c, const std::string& in, std::size_t chunk = 4093) {
    std::string out;
    auto dec = Decompressor::create(
        c, [&](const void* d, std::size_t n) { out.append(static_cast<const char*>(d), n); });
    for (std::size_t i = 0; i < in.size(); i += chunk) {
        dec->feed(in.data() + i, std::min(chunk, in.size() - i));
    }
    dec->finish();
    return out;
}

} // namespace

TEST_CASE("compression is detected from the magic bytes") {
    const unsigned char gz[] = {0x1f, 0x8b, 0x08, 0x00};
    const unsigned char zst[] = {0x28, 0xb5, 0x2f, 0xfd};
    const char tar[] = "etc/passwd\0\0\0";
    CHECK(detect_compression(gz, sizeof gz) == Compression::gzip);
    CHECK(detect_compression(zst, sizeof zst) == Compression::zstd);
    CHECK(detect_compression(tar, sizeof tar) == Compression::none);
    CHECK(detect_compression(zst, 3) == Compression::none);
    CHECK(detect_compression(gz, 0) == Compression::none);
    CHECK(detect_compression(compress(Compression::gzip, "x").data(), 10) == Compression::gzip);
    CHECK(detect_compression(compress(Compression::zstd, "x").data(), 10) == Compression::zstd);
}

TEST_CASE("compression names parse and print") {
    CHECK(parse_compression("zstd") == Compression::zstd);
    CHECK(parse_compression("gzip") == Compression::gzip);
    CHECK(parse_compression("none") == Compression::none);
    CHECK(parse_compression("uncompressed") == Compression::none);
    CHECK_THROWS_AS(parse_compression("lz4"), UsageError);
    CHECK(to_string(Compression::zstd) == "zstd");
    CHECK(oci_layer_media_type(Compression::gzip) == "application/vnd.oci.image.layer.v1.tar+gzip");
    CHECK(oci_layer_media_type(Compression::zstd) == "application/vnd.oci.image.layer.v1.tar+zstd");
    CHECK(oci_layer_media_type(Compression::none) == "application/vnd.oci.image.layer.v1.tar");
}

TEST_CASE("zstd, gzip and none round-trip streams of any size") {
    for (auto c : {Compression::zstd, Compression::gzip, Compression::none}) {
        for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{100000},
                              std::size_t{3} << 20}) {
            INFO(std::string(to_string(c)) << " " << n);
            std::string in = sample(n);
            std::string z = compress(c, in);
            if (c != Compression::none && n > 1000) {
                CHECK(z.size() < in.size());
            }
            CHECK(decompress(c, z) == in);
            CHECK(decompress(c, z, 1) .size() == in.size());
        }
    }
}

TEST_CASE("multi-threaded zstd gives the same stream as itself and decodes") {
    std::string in = sample(8u << 20);
    std::string a = compress(Compression::zstd, in, 3, 4);
    std::string b = compress(Compression::zstd, in, 3, 4);
    CHECK(a == b);
    CHECK(decompress(Compression::zstd, a) == in);
    std::string one = compress(Compression::zstd, in, 3, 1);
    CHECK(decompress(Compression::zstd, one) == in);
}

TEST_CASE("gzip output is deterministic and concatenated members decode as one stream") {
    std::string a = compress(Compression::gzip, "hello ");
    std::string b = compress(Compression::gzip, "world");
    CHECK(a == compress(Compression::gzip, "hello "));
    CHECK(decompress(Compression::gzip, a + b) == "hello world");
    CHECK(decompress(Compression::gzip, a + std::string(512, '\0')) == "hello ");
    CHECK_THROWS_WITH(decompress(Compression::gzip, a + "garbage"),
                      Catch::Contains("garbage after the end"));
}

TEST_CASE("concatenated zstd frames decode as one stream") {
    std::string z = compress(Compression::zstd, "abc") + compress(Compression::zstd, "def");
    CHECK(decompress(Compression::zstd, z) == "abcdef");
}

TEST_CASE("a truncated stream is an error naming the codec") {
    std::string in = sample(200000);
    std::string gz = compress(Compression::gzip, in);
    std::string zs = compress(Compression::zstd, in);
    for (std::size_t cut : {std::size_t{1}, std::size_t{10}, gz.size() / 2, gz.size() - 1}) {
        CHECK_THROWS_WITH(decompress(Compression::gzip, gz.substr(0, cut)),
                          "unexpected end of gzip stream");
    }
    for (std::size_t cut : {std::size_t{1}, std::size_t{10}, zs.size() / 2, zs.size() - 1}) {
        CHECK_THROWS_WITH(decompress(Compression::zstd, zs.substr(0, cut)),
                          "unexpected end of zstd stream");
    }
    CHECK_THROWS_WITH(decompress(Compression::gzip, ""), "unexpected end of gzip stream");
    CHECK_THROWS_WITH(decompress(Compression::zstd, ""), "unexpected end of zstd stream");
}

TEST_CASE("corrupt streams are errors naming the codec") {
    std::string in = sample(100000);
    std::string gz = compress(Compression::gzip, in);
    std::string zs = compress(Compression::zstd, in);
    gz[gz.size() / 2] ^= 0x55;
    gz[gz.size() / 2 + 1] ^= 0x55;
    zs[zs.size() / 2] ^= 0x55;
    CHECK_THROWS_WITH(decompress(Compression::gzip, gz), Catch::Contains("gzip"));
    // zstd's checksum catches what the entropy decoder lets through.
    CHECK_THROWS_WITH(decompress(Compression::zstd, zs), Catch::Contains("zstd"));
}

TEST_CASE("parallel gzip output does not depend on the thread count and gzip -d reads it") {
    std::string in = sample(3u << 20) + std::string(100000, 'z') + sample(12345);
    std::string one = compress(Compression::gzip, in, 0, 1);
    std::string four = compress(Compression::gzip, in, 0, 4, 65536);
    CHECK(one == four);
    CHECK(decompress(Compression::gzip, four) == in);
    CHECK(one.size() < in.size() / 2);
    auto gz = strata::run_capture({"gzip", "-dc"}, false, one);
    REQUIRE(gz.status.success());
    CHECK(gz.out == in);
    auto zs = strata::run_capture({"zstd", "-dcq"}, false, compress(Compression::zstd, in, 0, 2));
    REQUIRE(zs.status.success());
    CHECK(zs.out == in);
    CHECK_THROWS_AS(compress(Compression::gzip, "x", 11), UsageError);
}

namespace {

std::string decompress_with(GzipEngine engine, const std::string& in, std::size_t chunk) {
    std::string out;
    auto dec = Decompressor::create_gzip(
        [&](const void* d, std::size_t n) { out.append(static_cast<const char*>(d), n); },
        engine);
    for (std::size_t i = 0; i < in.size(); i += chunk) {
        dec->feed(in.data() + i, std::min(chunk, in.size() - i));
    }
    dec->finish();
    return out;
}

// A gzip member written by hand around zlib's raw deflate: every optional
// header field (FEXTRA, FNAME, FCOMMENT, FHCRC), as other tools write them.
std::string member_with_all_header_fields(const std::string& data) {
    std::string raw(data.size() + 1024, '\0');
    z_stream zs{};
    REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    zs.next_out = reinterpret_cast<Bytef*>(raw.data());
    zs.avail_out = static_cast<uInt>(raw.size());
    REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    raw.resize(zs.total_out);
    deflateEnd(&zs);
    std::string h("\x1f\x8b\x08\x1e\0\0\0\0\0\x03", 10); // FHCRC|FEXTRA|FNAME|FCOMMENT
    h += std::string("\x04\0ab\x01\x02", 6);             // XLEN 4, one subfield
    h += std::string("name.tar\0", 9);
    h += std::string("a comment\0", 10);
    uLong hcrc = crc32(0L, reinterpret_cast<const Bytef*>(h.data()), static_cast<uInt>(h.size()));
    h += static_cast<char>(hcrc & 0xff);
    h += static_cast<char>((hcrc >> 8) & 0xff);
    uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(data.data()),
                      static_cast<uInt>(data.size()));
    std::string t;
    for (int i = 0; i < 4; ++i) {
        t += static_cast<char>((crc >> (8 * i)) & 0xff);
    }
    for (int i = 0; i < 4; ++i) {
        t += static_cast<char>((data.size() >> (8 * i)) & 0xff);
    }
    return h + raw + t;
}

} // namespace

TEST_CASE("both gzip engines decode the same streams and refuse the same damage") {
    if (!igzip_available()) {
        WARN("libisal.so.2 is not installed: only zlib's inflate is exercised");
    }
    std::string in = sample(1u << 20) + std::string(300000, 'z') + sample(4321);
    std::string gz = compress(Compression::gzip, in);
    std::string small = compress(Compression::gzip, "tail");
    std::string custom = member_with_all_header_fields("custom header member");
    for (GzipEngine engine : {GzipEngine::fastest, GzipEngine::zlib}) {
        CAPTURE(engine == GzipEngine::zlib ? "zlib" : "fastest");
        for (std::size_t chunk : {std::size_t{1}, std::size_t{7}, std::size_t{4093},
                                  std::size_t{1} << 22}) {
            CAPTURE(chunk);
            if (chunk == 1) {
                CHECK(decompress_with(engine, small + custom, chunk) ==
                      "tailcustom header member");
                continue;
            }
            CHECK(decompress_with(engine, gz + small + custom + std::string(1024, '\0'), chunk) ==
                  in + "tailcustom header member");
        }
        // The trailer's CRC-32 and size are checked.
        std::string bad_crc = gz;
        bad_crc[bad_crc.size() - 8] ^= 1;
        CHECK_THROWS_WITH(decompress_with(engine, bad_crc, 4093),
                          Catch::Contains("corrupt gzip stream"));
        std::string bad_size = gz;
        bad_size[bad_size.size() - 1] ^= 1;
        CHECK_THROWS_WITH(decompress_with(engine, bad_size, 4093),
                          Catch::Contains("corrupt gzip stream"));
        std::string bad_method = gz;
        bad_method[2] = 7;
        CHECK_THROWS_WITH(decompress_with(engine, bad_method, 4093),
                          Catch::Contains("corrupt gzip stream"));
        CHECK_THROWS_WITH(decompress_with(engine, gz.substr(0, gz.size() - 3), 4093),
                          "unexpected end of gzip stream");
        CHECK_THROWS_WITH(decompress_with(engine, gz + "junk", 4093),
                          Catch::Contains("garbage after the end"));
        std::string flipped = gz;
        flipped[gz.size() / 2] ^= 0x55;
        flipped[gz.size() / 2 + 1] ^= 0x55;
        CHECK_THROWS_WITH(decompress_with(engine, flipped, 4093),
                          Catch::Contains("corrupt gzip stream"));
    }
}

TEST_CASE("gzip stores incompressible blocks and still finds repeats in random-looking data") {
    std::string random;
    std::uint64_t x = 88172645463325252ull;
    while (random.size() < (3u << 20)) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        random.append(reinterpret_cast<const char*>(&x), sizeof x);
    }
    std::string gz = compress(Compression::gzip, random);
    // Stored: the input plus a few bytes per 64 KiB block, never expanded
    // by failed match searches.
    CHECK(gz.size() >= random.size());
    CHECK(gz.size() < random.size() + random.size() / 1000);
    CHECK(decompress(Compression::gzip, gz) == random);
    auto gunzip = strata::run_capture({"gzip", "-dc"}, false, gz);
    REQUIRE(gunzip.status.success());
    CHECK(gunzip.out == random);

    // The same byte histogram, but an 8 KiB piece repeated: deflate's
    // matches find it, so the block is compressed, not stored.
    std::string repeated;
    while (repeated.size() < (1u << 20)) {
        repeated += random.substr(0, 8192);
    }
    std::string gz2 = compress(Compression::gzip, repeated);
    CHECK(gz2.size() < repeated.size() / 10);
    CHECK(decompress(Compression::gzip, gz2) == repeated);
    // A 10,000-byte repeat at distance 10,000 that straddles the 512 KiB
    // block boundary: its second half matches the previous block's tail,
    // which the next block sees as its dictionary, so both halves are found.
    std::string mixed = random.substr(0, 520000) + random.substr(510000, 100000);
    std::string gz3 = compress(Compression::gzip, mixed);
    CHECK(gz3.size() < mixed.size() - 9000);
    CHECK(decompress(Compression::gzip, gz3) == mixed);
}
