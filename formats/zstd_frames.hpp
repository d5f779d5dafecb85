// The content of zstd frames, read without decoding where it is stored: a
// block of content that does not compress is kept raw in the frame (RFC
// 8878, 3.1.1.2: Raw_Block, or RLE_Block for one repeated byte), so an
// incompressible file's frames hold its bytes as they are, 3 bytes of block
// header every 128 KiB. Hashing those bytes in place copies nothing, where
// libzstd's decoder copies every raw block out.
#pragma once

#include <zstd.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace strata::formats {

// Decodes the zstd frames [in, in + in_size) through libzstd as one stream
// (their checksums checked), a run at a time: space(&room) says where the
// next run may go, took(at, n) is given each run and may refuse it. The
// number of bytes they decode to, at most `limit`; nullopt when the frames
// are damaged or incomplete, would give more than `limit`, or took refused a
// run.
template <typename Space, typename Took>
std::optional<std::uint64_t> decode_runs(ZSTD_DCtx* d, const char* in, std::size_t in_size,
                                         std::uint64_t limit, Space&& space, Took&& took) {
    ZSTD_DCtx_reset(d, ZSTD_reset_session_and_parameters);
    ZSTD_inBuffer ib{in, in_size, 0};
    std::uint64_t got = 0;
    std::size_t last = 1;
    while (true) {
        std::size_t room = 0;
        char* at = space(&room);
        ZSTD_outBuffer ob{at, room, 0};
        last = ZSTD_decompressStream(d, &ob, &ib);
        if (ZSTD_isError(last) || ob.pos > limit - got || !took(at, ob.pos)) {
            return std::nullopt;
        }
        got += ob.pos;
        if (ib.pos == ib.size && (last == 0 || ob.pos == 0)) {
            break;
        }
    }
    if (last != 0) {
        return std::nullopt;
    }
    return got;
}

// Gives the content of the zstd frames [in, in + size), in order, to
// took(data, n) in runs, and checks each frame's content checksum (XXH64)
// when it has one. A frame whose blocks are all raw or RLE, within the
// limits libzstd keeps (no dictionary, a window of at most 2^27 bytes,
// blocks no larger than the window or 128 KiB, the content size the header
// gives), is read in place: a raw block's run points into `in`, an RLE
// block's into scratch. Any other frame (compressed blocks, skippable frames)
// goes through libzstd (d, decode_runs), into scratch. False when the frames
// are damaged, when bytes follow the last one, or when they do not hold
// exactly `want` bytes; took may then have been given some of the content.
bool frame_content_runs(ZSTD_DCtx* d, const char* in, std::size_t size, std::uint64_t want,
                        std::vector<char>& scratch,
                        const std::function<void(const char*, std::size_t)>& took);

} // namespace strata::formats
