#include "formats/zstd_frames.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <string>
#include <vector>
#include <zstd.h>

using namespace strata::formats;

namespace {

std::string noise(std::size_t n, std::uint32_t seed) {
    std::mt19937 g(seed);
    std::string s(n, '\0');
    for (auto& c : s) {
        c = static_cast<char>(g() & 0xff);
    }
    return s;
}

std::string compress(const std::string& in, bool checksum) {
    ZSTD_CCtx* c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3);
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum ? 1 : 0);
    std::string out(ZSTD_compressBound(in.size()), '\0');
    std::size_t n = ZSTD_compress2(c, out.data(), out.size(), in.data(), in.size());
    ZSTD_freeCCtx(c);
    REQUIRE_FALSE(ZSTD_isError(n));
    out.resize(n);
    return out;
}

struct Block {
    int type;
    std::size_t at; // where its stored bytes start
};

// The blocks of a frame libzstd wrote (single frame, no dictionary).
std::vector<Block> blocks(const std::string& f) {
    REQUIRE(f.size() >= 6);
    const auto fhd = static_cast<unsigned char>(f[4]);
    const bool single = (fhd & 0x20) != 0;
    const unsigned fcs_flag = fhd >> 6;
    const std::size_t dict_bytes[] = {0, 1, 2, 4};
    std::size_t at = 5 + (single ? 0 : 1) + dict_bytes[fhd & 3] +
                     (fcs_flag == 0 ? (single ? 1 : 0) : std::size_t{1} << fcs_flag);
    std::vector<Block> types;
    while (true) {
        auto b = [&](std::size_t i) {
            return static_cast<std::uint32_t>(static_cast<unsigned char>(f[at + i]));
        };
        std::uint32_t bh = b(0) | b(1) << 8 | b(2) << 16;
        int type = static_cast<int>((bh >> 1) & 3);
        types.push_back(Block{type, at + 3});
        at += 3 + (type == 1 ? 1 : bh >> 3);
        if ((bh & 1) != 0) {
            break;
        }
    }
    return types;
}

struct Read {
    bool ok = false;
    std::string content;
    bool in_place = false; // some run pointed into the frames themselves
};

Read read(const std::string& frames, std::uint64_t want) {
    ZSTD_DCtx* d = ZSTD_createDCtx();
    std::vector<char> scratch;
    Read r;
    r.ok = frame_content_runs(d, frames.data(), frames.size(), want, scratch,
                              [&](const char* at, std::size_t n) {
                                  if (at >= frames.data() && at < frames.data() + frames.size()) {
                                      r.in_place = true;
                                  }
                                  r.content.append(at, n);
                              });
    ZSTD_freeDCtx(d);
    return r;
}

std::string skippable(const std::string& payload) {
    std::string s = {'\x50', '\x2a', '\x4d', '\x18'};
    std::uint32_t n = static_cast<std::uint32_t>(payload.size());
    for (int i = 0; i < 4; ++i) {
        s.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    }
    return s + payload;
}

// A frame made by hand: magic, descriptor, then `rest` (window, content
// size, blocks).
std::string frame(unsigned char descriptor, const std::string& rest) {
    std::string s = {'\x28', '\xb5', '\x2f', '\xfd', static_cast<char>(descriptor)};
    return s + rest;
}

std::string block_header(bool last, int type, std::uint32_t size) {
    std::uint32_t bh = (last ? 1u : 0u) | static_cast<std::uint32_t>(type) << 1 | size << 3;
    return {static_cast<char>(bh & 0xff), static_cast<char>((bh >> 8) & 0xff),
            static_cast<char>((bh >> 16) & 0xff)};
}

} // namespace

TEST_CASE("zstd frames: stored blocks are read in place, others decoded, all checked") {
    const std::string random = noise(300 * 1024 + 17, 7);
    const std::string raw_frame = compress(random, true);
    for (const Block& b : blocks(raw_frame)) {
        REQUIRE(b.type == 0); // incompressible: every block raw
    }
    Read r = read(raw_frame, random.size());
    CHECK(r.ok);
    CHECK(r.content == random);
    CHECK(r.in_place);

    // One repeated byte: RLE blocks (libzstd compresses the first block).
    const std::string same(400 * 1024, 'a');
    const std::string rle_frame = compress(same, true);
    REQUIRE(blocks(rle_frame).back().type == 1);
    r = read(rle_frame, same.size());
    CHECK(r.ok);
    CHECK(r.content == same);

    // Text compresses: decoded by libzstd, the same bytes.
    std::string text;
    for (int i = 0; i < 20000; ++i) {
        text += "line " + std::to_string(i % 97) + " of some text\n";
    }
    const std::string text_frame = compress(text, true);
    REQUIRE(blocks(text_frame).front().type == 2);
    r = read(text_frame, text.size());
    CHECK(r.ok);
    CHECK(r.content == text);
    CHECK_FALSE(r.in_place);

    // Several frames, a skippable one among them, read as one stream; no
    // checksum is fine too.
    const std::string tail = noise(5000, 9);
    const std::string stream = raw_frame + skippable("toc") + text_frame + compress(tail, false);
    r = read(stream, random.size() + text.size() + tail.size());
    CHECK(r.ok);
    CHECK(r.content == random + text + tail);

    // An empty frame.
    r = read(compress("", true), 0);
    CHECK(r.ok);
    CHECK(r.content.empty());
}

TEST_CASE("zstd frames: damaged or mismeasured frames are refused") {
    const std::string random = noise(300 * 1024, 11);
    const std::string f = compress(random, true);
    CHECK(read(f, random.size()).ok);
    // The content's size must be exactly what is wanted.
    CHECK_FALSE(read(f, random.size() - 1).ok);
    CHECK_FALSE(read(f, random.size() + 1).ok);
    // A flipped byte in a raw block: the checksum says so.
    std::string damaged = f;
    damaged[damaged.size() / 2] ^= 0x20;
    CHECK_FALSE(read(damaged, random.size()).ok);
    // A flipped checksum.
    damaged = f;
    damaged.back() ^= 0x01;
    CHECK_FALSE(read(damaged, random.size()).ok);
    // Cut short, or followed by a stray byte.
    CHECK_FALSE(read(f.substr(0, f.size() - 1), random.size()).ok);
    CHECK_FALSE(read(f.substr(0, f.size() / 2), random.size()).ok);
    CHECK_FALSE(read(f + "x", random.size()).ok);
    // An RLE frame whose byte changed: the checksum again.
    const std::string same(400 * 1024, 'z');
    std::string rle = compress(same, true);
    const Block last = blocks(rle).back();
    REQUIRE(last.type == 1);
    CHECK(read(rle, same.size()).ok);
    REQUIRE(rle[last.at] == 'z');
    rle[last.at] = 'y';
    CHECK_FALSE(read(rle, same.size()).ok);
}

TEST_CASE("zstd frames: frames libzstd refuses are refused, whatever their blocks") {
    const std::string five = "hello";
    // Single segment, content size 5 (1 byte), one raw block of 5: fine.
    std::string good = frame(0x20, std::string(1, '\x05') + block_header(true, 0, 5) + five);
    Read r = read(good, 5);
    CHECK(r.ok);
    CHECK(r.content == five);
    // The header says 6 bytes, the block holds 5.
    CHECK_FALSE(read(frame(0x20, std::string(1, '\x06') + block_header(true, 0, 5) + five), 5).ok);
    // A window of 1 KiB (descriptor 0) and a raw block of 2 KiB.
    const std::string big(2048, 'q');
    CHECK_FALSE(
        read(frame(0x00, std::string(1, '\x00') + block_header(true, 0, 2048) + big), 2048).ok);
    // The same block in a window of 4 KiB (exponent 2): fine.
    r = read(frame(0x00, std::string(1, '\x10') + block_header(true, 0, 2048) + big), 2048);
    CHECK(r.ok);
    CHECK(r.content == big);
    // A reserved block type, and a reserved descriptor bit.
    CHECK_FALSE(read(frame(0x20, std::string(1, '\x05') + block_header(true, 3, 5) + five), 5).ok);
    CHECK_FALSE(read(frame(0x28, std::string(1, '\x05') + block_header(true, 0, 5) + five), 5).ok);
    // A dictionary the reader does not have.
    CHECK_FALSE(
        read(frame(0x21, std::string("\x07\x05", 2) + block_header(true, 0, 5) + five), 5).ok);
    // A last block missing: the frame never ends.
    CHECK_FALSE(read(frame(0x00, std::string(1, '\x10') + block_header(false, 0, 5) + five), 5).ok);
    // Not a frame at all.
    CHECK_FALSE(read("not zstd", 8).ok);
}
