// The content of zstd frames, read without decoding where it is stored: a
// block of content that does not compress is kept raw in the frame (RFC
// 8878, 3.1.1.2: Raw_Block, or RLE_Block for one repeated byte), so an
// incompressible file's frames hold its bytes as they are, 3 bytes of block
// header every 128 KiB. Hashing those bytes in place copies nothing, where
// libzstd's decoder copies every raw block out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

struct ZSTD_DCtx_s;

namespace strata::formats {

// Gives the content of the zstd frames [in, in + size), in order, to
// took(data, n) in runs, and checks each frame's content checksum (XXH64)
// when it has one. A frame whose blocks are all raw or RLE, within the
// limits libzstd keeps (no dictionary, a window of at most 2^27 bytes,
// blocks no larger than the window or 128 KiB, the content size the header
// gives), is read in place: a raw block's run points into `in`, an RLE
// block's into scratch. Any other frame (compressed blocks, skippable frames)
// goes through libzstd (d), into scratch. False when the frames are damaged,
// when bytes follow the last one, or when they do not hold exactly `want`
// bytes; took may then have been given some of the content.
bool frame_content_runs(ZSTD_DCtx_s* d, const char* in, std::size_t size, std::uint64_t want,
                        std::vector<char>& scratch,
                        const std::function<void(const char*, std::size_t)>& took);

} // namespace strata::formats
