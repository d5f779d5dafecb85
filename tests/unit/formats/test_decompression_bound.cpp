// Decompression bombs: a small compressed layer that expands to gigabytes
// is read with memory bounded by the reader's buffers, not by what the
// stream expands to; a truncated one is an error naming the entry.
#include "formats/compression.hpp"
#include "formats/tar.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <vector>
#include <zlib.h>

using namespace strata;
using namespace strata::formats;

namespace {

constexpr std::uint64_t k_mib = 1 << 20;
constexpr std::uint64_t k_gib = 1ull << 30;

// A ustar header for a regular file of `size` bytes (octal fields, checksum).
std::string ustar_header(const std::string& name, std::uint64_t size) {
    std::string h(512, '\0');
    auto put = [&](std::size_t off, std::size_t len, const std::string& v) {
        REQUIRE(v.size() <= len);
        std::memcpy(&h[off], v.data(), v.size());
    };
    auto octal = [](std::uint64_t v, int width) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%0*llo", width, static_cast<unsigned long long>(v));
        return std::string(buf);
    };
    put(0, 100, name);
    put(100, 8, octal(0644, 7));
    put(108, 8, octal(0, 7));
    put(116, 8, octal(0, 7));
    put(124, 12, octal(size, 11));
    put(136, 12, octal(1700000000, 11));
    put(156, 1, "0");
    put(257, 6, std::string("ustar\0", 6));
    put(263, 2, "00");
    std::memset(&h[148], ' ', 8);
    unsigned sum = 0;
    for (unsigned char c : h) {
        sum += c;
    }
    put(148, 8, octal(sum, 6) + std::string("\0 ", 2));
    return h;
}

// A zstd frame, written block by block: the tar header as a raw block, then
// `zeros` zero bytes as RLE blocks (4 bytes per 128 KiB: a ratio of 32768).
// With `last` false the frame is left unfinished (a truncated stream).
std::string zstd_bomb(const std::string& header, std::uint64_t zeros, bool last) {
    std::string f("\x28\xb5\x2f\xfd", 4);
    f += '\x00';                            // no content size, no checksum
    f += static_cast<char>((20 - 10) << 3); // 1 MiB window
    auto block = [&](int type, std::uint32_t size, bool is_last) {
        std::uint32_t v = (is_last ? 1u : 0u) | (static_cast<std::uint32_t>(type) << 1) | (size << 3);
        f += static_cast<char>(v & 0xff);
        f += static_cast<char>((v >> 8) & 0xff);
        f += static_cast<char>((v >> 16) & 0xff);
    };
    block(0, static_cast<std::uint32_t>(header.size()), false);
    f += header;
    constexpr std::uint64_t k_block = 128 << 10;
    while (zeros > 0) {
        std::uint64_t n = std::min(zeros, k_block);
        zeros -= n;
        block(1, static_cast<std::uint32_t>(n), last && zeros == 0);
        f += '\0';
    }
    return f;
}

// gzip of header + `zeros` zero bytes (deflate's ratio tops out near 1000).
std::string gzip_bomb(const std::string& header, std::uint64_t zeros) {
    z_stream zs{};
    REQUIRE(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_RLE) == Z_OK);
    std::string out;
    std::vector<unsigned char> buf(1 << 20);
    std::vector<unsigned char> zero(4 << 20, 0);
    auto run = [&](const void* data, std::size_t n, int flush) {
        zs.next_in = static_cast<Bytef*>(const_cast<void*>(data));
        zs.avail_in = static_cast<uInt>(n);
        do {
            zs.next_out = buf.data();
            zs.avail_out = static_cast<uInt>(buf.size());
            int r = deflate(&zs, flush);
            REQUIRE((r == Z_OK || r == Z_STREAM_END || r == Z_BUF_ERROR));
            out.append(reinterpret_cast<char*>(buf.data()), buf.size() - zs.avail_out);
        } while (zs.avail_out == 0 || (flush == Z_FINISH && zs.avail_in > 0));
    };
    run(header.data(), header.size(), Z_NO_FLUSH);
    while (zeros > 0) {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(zeros, zero.size()));
        zeros -= n;
        run(zero.data(), n, zeros == 0 ? Z_FINISH : Z_NO_FLUSH);
    }
    deflateEnd(&zs);
    return out;
}

std::uint64_t file_size(const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return static_cast<std::uint64_t>(st.st_size);
}

std::uint64_t status_kib(const char* field) {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(field, 0) == 0) {
            return std::stoull(line.substr(std::strlen(field)));
        }
    }
    FAIL("no " << field << " in /proc/self/status");
    return 0;
}

// Resets the peak-RSS mark (VmHWM) to the current RSS, so that what a test
// does is measured on its own, whatever earlier tests in this process used.
void reset_peak_rss() {
    std::ofstream f("/proc/self/clear_refs");
    f << "5";
    f.flush();
    REQUIRE(f.good());
}

struct Outcome {
    std::vector<TarEntry> entries;
    std::optional<LayerDigests> digests;
    std::uint64_t peak_growth = 0; // bytes
};

// Reads the layer at path: every entry, the first MiB of each file's content
// (checked to be zeros), and the digests; measures the peak RSS growth.
Outcome read_measured(const std::string& path) {
    UniqueFd in = fs::open(path, O_RDONLY);
    std::vector<char> buf(k_mib);
    reset_peak_rss();
    std::uint64_t base = status_kib("VmRSS:");
    Outcome o;
    {
        TarReader r(in.get(), path);
        while (auto e = r.next()) {
            std::size_t n = r.read(buf.data(), buf.size());
            CHECK(n == std::min<std::uint64_t>(e->size, buf.size()));
            CHECK(std::all_of(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n),
                              [](char c) { return c == 0; }));
            o.entries.push_back(*e);
        }
        o.digests = r.finish();
    }
    std::uint64_t peak = status_kib("VmHWM:");
    o.peak_growth = (peak > base ? peak - base : 0) * 1024;
    return o;
}

// A layer cut inside the content of its one entry "zeros": the header
// reads, the content fails with an error naming the entry, the codec and the
// file.
void check_truncated_in_zeros(const std::string& cut, const std::string& codec) {
    UniqueFd in = fs::open(cut, O_RDONLY);
    TarReader r(in.get(), cut);
    auto e = r.next();
    REQUIRE(e);
    CHECK(e->path == "zeros");
    CHECK_THROWS_WITH(r.next(), Catch::Contains("zeros") &&
                                    Catch::Contains("unexpected end of " + codec + " stream") &&
                                    Catch::Contains(cut));
}

} // namespace

TEST_CASE("a zstd layer expanding to gigabytes is read in bounded memory") {
    TempDir dir;
    const std::uint64_t size = 2 * k_gib;
    std::string header = ustar_header("zeros", size);
    std::string p = dir.path() + "/bomb.tar.zst";
    // The content, then the end-of-archive blocks; 64 KiB expanding to 2 GiB.
    fs::write_file_atomic(p, zstd_bomb(header, size + 1024, true));
    REQUIRE(file_size(p) < 128 * 1024);

    Outcome o = read_measured(p);
    REQUIRE(o.entries.size() == 1);
    CHECK(o.entries[0].path == "zeros");
    CHECK(o.entries[0].size == size);
    CHECK(o.digests->diff_size == 512 + size + 1024);
    CHECK(o.digests->blob_size == file_size(p));
    INFO("peak RSS growth " << o.peak_growth / k_mib << " MiB");
    CHECK(o.peak_growth < 64 * k_mib);

    SECTION("truncated inside the content: an error naming the entry") {
        std::string cut = dir.path() + "/cut.tar.zst";
        fs::write_file_atomic(cut, zstd_bomb(header, 512 * k_mib, false));
        check_truncated_in_zeros(cut, "zstd");
    }
}

TEST_CASE("a gzip layer expanding to a gigabyte is read in bounded memory") {
    TempDir dir;
    const std::uint64_t size = k_gib;
    std::string header = ustar_header("zeros", size);
    std::string gz = gzip_bomb(header, size + 1024);
    REQUIRE(gz.size() < 2 * k_mib);
    std::string p = dir.path() + "/bomb.tar.gz";
    fs::write_file_atomic(p, gz);

    Outcome o = read_measured(p);
    REQUIRE(o.entries.size() == 1);
    CHECK(o.entries[0].path == "zeros");
    CHECK(o.entries[0].size == size);
    CHECK(o.digests->diff_size == 512 + size + 1024);
    INFO("peak RSS growth " << o.peak_growth / k_mib << " MiB");
    CHECK(o.peak_growth < 64 * k_mib);

    SECTION("truncated inside the content: an error naming the entry") {
        std::string cut = dir.path() + "/cut.tar.gz";
        fs::write_file_atomic(cut, gz.substr(0, gz.size() / 2));
        check_truncated_in_zeros(cut, "gzip");
    }
}

TEST_CASE("Decompressor::decode never writes more than the output buffer") {
    // One call with the whole bomb as input and a 64 KiB output buffer.
    std::string header = ustar_header("zeros", 64 * k_mib);
    for (auto c : {Compression::zstd, Compression::gzip}) {
        std::string in = c == Compression::zstd ? zstd_bomb(header, 64 * k_mib + 1024, true)
                                                : gzip_bomb(header, 64 * k_mib + 1024);
        auto dec = Decompressor::create(c);
        std::vector<char> out(64 << 10);
        std::uint64_t total = 0;
        std::size_t pos = 0;
        int calls = 0;
        for (;;) {
            auto st = dec->decode(in.data() + pos, in.size() - pos, out.data(), out.size());
            REQUIRE(st.produced <= out.size());
            pos += st.consumed;
            total += st.produced;
            ++calls;
            if (st.consumed == 0 && st.produced == 0) {
                break;
            }
        }
        CHECK(pos == in.size());
        CHECK(total == 512 + 64 * k_mib + 1024);
        CHECK(calls > 1000);
        CHECK_NOTHROW(dec->finish());
    }
}
