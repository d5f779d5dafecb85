// Frame layout from RFC 8878 section 3.1.1: magic 0xFD2FB528, the frame
// header (descriptor byte, window descriptor unless single-segment,
// dictionary ID, frame content size), blocks of 3-byte headers (bit 0 last,
// bits 1-2 type: 0 raw, 1 RLE, 2 compressed, 3 reserved; bits 3-23 size),
// then the low 32 bits of the content's XXH64 (seed 0) when the descriptor's
// checksum bit is set.
#include "formats/zstd_frames.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <optional>

namespace strata::formats {

namespace {

constexpr std::uint32_t k_frame_magic = 0xFD2FB528;
constexpr std::uint64_t k_block_max = 128 << 10;
// libzstd's default limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT): a larger window is
// refused unless the reader raises it, which the writer's reader does not.
constexpr unsigned k_window_log_limit = 27;

std::uint32_t le_bytes(const unsigned char* p, std::size_t n) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < n; ++i) {
        v |= static_cast<std::uint32_t>(p[i]) << (8 * i);
    }
    return v;
}

// Where a frame of stored blocks starts its blocks, and whether it ends with
// a checksum.
struct StoredFrame {
    std::size_t blocks = 0;
    bool checksum = false;
};

// The frame p[0, n) (n: its whole length, as ZSTD_findFrameCompressedSize
// measures it), when every block is raw or RLE and within libzstd's limits;
// nullopt for any other frame, which libzstd then decodes or refuses.
std::optional<StoredFrame> stored_frame(const unsigned char* p, std::size_t n) {
    if (n < 6 || le_bytes(p, 4) != k_frame_magic) {
        return std::nullopt;
    }
    const unsigned fhd = p[4];
    const unsigned fcs_flag = fhd >> 6;
    const bool single = (fhd & 0x20) != 0;
    const bool reserved = (fhd & 0x08) != 0;
    const bool checksum = (fhd & 0x04) != 0;
    if (reserved || (fhd & 0x03) != 0) {
        return std::nullopt; // a dictionary is libzstd's business
    }
    std::size_t pos = 5;
    std::uint64_t window = 0;
    if (!single) {
        const unsigned wd = p[pos++];
        const unsigned log = 10 + (wd >> 3);
        if (log > k_window_log_limit) {
            return std::nullopt;
        }
        const std::uint64_t base = std::uint64_t{1} << log;
        window = base + (base / 8) * (wd & 7);
    }
    const std::size_t fcs_bytes = fcs_flag == 0 ? (single ? 1 : 0) : std::size_t{1} << fcs_flag;
    if (pos + fcs_bytes > n) {
        return std::nullopt;
    }
    std::optional<std::uint64_t> fcs;
    if (fcs_bytes > 0) {
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < fcs_bytes; ++i) {
            v |= static_cast<std::uint64_t>(p[pos + i]) << (8 * i);
        }
        fcs = fcs_bytes == 2 ? v + 256 : v;
        pos += fcs_bytes;
    }
    if (single) {
        if (*fcs > (std::uint64_t{1} << k_window_log_limit)) {
            return std::nullopt;
        }
        window = *fcs;
    }
    const std::uint64_t block_max = std::min(window, k_block_max);
    std::size_t at = pos;
    std::uint64_t content = 0;
    while (true) {
        if (at + 3 > n) {
            return std::nullopt;
        }
        const std::uint32_t bh = le_bytes(p + at, 3);
        at += 3;
        const unsigned type = (bh >> 1) & 3;
        const std::uint32_t bsize = bh >> 3;
        if (type > 1 || bsize > block_max) {
            return std::nullopt;
        }
        const std::size_t stored = type == 0 ? bsize : 1;
        if (stored > n - at) {
            return std::nullopt;
        }
        at += stored;
        content += bsize;
        if ((bh & 1) != 0) {
            break;
        }
    }
    if (checksum) {
        at += 4;
    }
    if (at != n || (fcs && *fcs != content)) {
        return std::nullopt;
    }
    return StoredFrame{pos, checksum};
}

} // namespace

bool frame_content_runs(ZSTD_DCtx* d, const char* in, std::size_t size, std::uint64_t want,
                        std::vector<char>& scratch,
                        const std::function<void(const char*, std::size_t)>& took) {
    if (scratch.size() < k_block_max) {
        scratch.resize(k_block_max);
    }
    const auto* bytes = reinterpret_cast<const unsigned char*>(in);
    std::uint64_t got = 0;
    std::size_t pos = 0;
    XXH64_state_t xxh;
    while (pos < size) {
        const std::size_t fsize = ZSTD_findFrameCompressedSize(in + pos, size - pos);
        if (ZSTD_isError(fsize) || fsize == 0 || fsize > size - pos) {
            return false;
        }
        if (auto sf = stored_frame(bytes + pos, fsize)) {
            if (sf->checksum) {
                XXH64_reset(&xxh, 0);
            }
            std::size_t at = pos + sf->blocks;
            while (true) {
                const std::uint32_t bh = le_bytes(bytes + at, 3);
                at += 3;
                const std::uint32_t bsize = bh >> 3;
                if (bsize > want - got) {
                    return false;
                }
                const char* run = in + at;
                if (((bh >> 1) & 3) == 1) {
                    std::memset(scratch.data(), in[at], bsize);
                    run = scratch.data();
                    at += 1;
                } else {
                    at += bsize;
                }
                if (sf->checksum) {
                    XXH64_update(&xxh, run, bsize);
                }
                if (bsize > 0) {
                    took(run, bsize);
                }
                got += bsize;
                if ((bh & 1) != 0) {
                    break;
                }
            }
            if (sf->checksum &&
                static_cast<std::uint32_t>(XXH64_digest(&xxh)) != le_bytes(bytes + at, 4)) {
                return false;
            }
        } else {
            // One frame through libzstd, which checks its checksum.
            auto n = decode_runs(
                d, in + pos, fsize, want - got,
                [&](std::size_t* room) {
                    *room = scratch.size();
                    return scratch.data();
                },
                [&](const char* at, std::size_t k) {
                    if (k > 0) {
                        took(at, k);
                    }
                    return true;
                });
            if (!n) {
                return false;
            }
            got += *n;
        }
        pos += fsize;
    }
    return got == want;
}

} // namespace strata::formats
